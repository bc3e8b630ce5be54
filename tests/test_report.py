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
