"""Layer-metric tables and the run report drawn from them."""

from __future__ import annotations

import numpy as np
import pytest

from generators import rhm
from tmr.metrics.table import COLUMNS, layer_metric_rows, read_table, write_table
from tmr.report import claims_from_rows, write_report


def _collapsing_layers(sample, n_layers: int = 4) -> dict[str, np.ndarray]:
    """Layers that move from the one-hot input towards the one-hot root class."""
    rng = np.random.default_rng(0)
    x = np.eye(8)[sample.x].reshape(len(sample.x), -1)  # (n, 64)
    root = np.eye(4)[sample.levels[0][:, 0]] @ rng.normal(size=(4, 64))  # (n, 64)
    return {f"layers.{i}.post": (1 - t) * x + t * 5 * root
            for i, t in enumerate(np.linspace(0.0, 0.9, n_layers))}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    world = rhm.make_world(vocab_size=8, n_classes=4, n_synonyms=2, tuple_size=2,
                           n_levels=3, rng=0)
    sample = rhm.sample(world, 600, rng=1)
    out = tmp_path_factory.mktemp("run")
    for step in (10, 100):
        write_table(layer_metric_rows(_collapsing_layers(sample), sample, step=step),
                    out / "layer_metrics.csv")
    return out


def test_table_round_trips_with_the_probe_columns(run_dir):
    rows = read_table(run_dir / "layer_metrics.csv")
    assert set(rows[0]) == set(COLUMNS)
    assert {r["step"] for r in rows} == {10, 100}
    assert all(isinstance(r["value"], float) for r in rows)


def test_claims_from_saved_rows_see_collapse_towards_the_root(run_dir):
    claims = {c["claim"]: c for c in claims_from_rows(read_table(run_dir / "layer_metrics.csv"))}
    # interpolating towards the root class code lowers rank and separation D
    assert claims[3]["holds"]
    assert float(claims[7]["spearman"]) > 0.8  # type: ignore[arg-type]


def test_report_writes_self_contained_html_and_markdown(run_dir, tmp_path):
    page, summary = write_report(run_dir, tmp_path)
    text = page.read_text()
    assert "data:image/png;base64," in text and "<img src='http" not in text
    assert "Paper 000 claims" in summary.read_text()


def test_report_without_a_table_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="record layer metrics first"):
        write_report(tmp_path)


def test_report_page_has_a_claims_table_contents_and_captions(run_dir, tmp_path):
    page, summary = write_report(run_dir, tmp_path)
    text = page.read_text()
    assert '<table class="claims">' in text and "<pre" not in text
    assert '<nav class="toc">' in text and 'href="#paper-000-claims"' in text
    assert text.count("<figcaption>") == text.count("<img ")
    assert "verdict" in summary.read_text()


def test_extra_sections_are_added_to_the_page_and_contents(run_dir, tmp_path):
    def extra(run):
        return "Extra tools", f"<p>{len(run.sites)} sites</p>"

    text = write_report(run_dir, tmp_path, extra_sections=[extra])[0].read_text()
    assert 'href="#extra-tools"' in text and "<p>4 sites</p>" in text


def test_untestable_claim_says_why():
    from tmr.metrics.claims import paper000_claims

    (row,) = paper000_claims({"mi_input": [7.62] * 4})
    assert row["verdict"] == "not testable" and "injective" in str(row["reason"])
    (row,) = paper000_claims({"effective_rank": [3.0, float("nan"), 1.0]})
    assert row["verdict"] == "not testable" and "layer(s) 1" in str(row["reason"])


@pytest.mark.parametrize(("values", "verdict"), [([4.0, 3.0, 2.0, 1.0], "holds"),
                                                 ([1.0, 2.0, 3.0, 4.0], "fails")])
def test_verdict_follows_the_trend_and_quotes_rho(values, verdict):
    from tmr.metrics.claims import paper000_claims

    (row,) = paper000_claims({"effective_rank": values})
    assert row["verdict"] == verdict and "ρ = " in str(row["reason"])


def test_mi_estimates_are_clipped_in_plots_only():
    from tmr.report_figures import clip_mi

    v = np.array([-0.35, 0.0, 1.2])
    assert clip_mi("knn_mi", v).tolist() == [0.0, 0.0, 1.2]
    assert clip_mi("effective_rank", v).tolist() == v.tolist()
