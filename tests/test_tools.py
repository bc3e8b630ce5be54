"""Scoring tools against known latents: AUROC/F1 known answers, canonicity invariances,
planted variables kept or discarded by scale, and ``tmr evaluate-tools`` end to end."""

from __future__ import annotations

import itertools
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tmr import io
from tmr.cli import app
from tmr.config import data_config_from_dict, from_dict
from tmr.metrics.features import (
    MONO_AUROC,
    auroc_matrix,
    best_f1,
    canonicity,
    fvu,
    latent_indicators,
)
from tmr.tools import (
    VERDICT_CODES,
    ToolFeatures,
    canonicity_rows,
    parse_widths,
    planted_rows,
    read_rows,
    score_features,
)
from tmr.train import TrainConfig, run


def brute_auroc(f: np.ndarray, y: np.ndarray) -> float:
    """P(f_pos > f_neg) + ½ P(f_pos = f_neg) over all positive/negative pairs."""
    pos, neg = f[y], f[~y]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_auroc_matches_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    f = rng.integers(0, 4, (60, 3)).astype(float)  # many ties
    y = rng.random((60, 2)) < 0.4
    a = auroc_matrix(f, y)
    for j, i in itertools.product(range(3), range(2)):
        assert a[j, i] == pytest.approx(brute_auroc(f[:, j], y[:, i]))


def test_auroc_is_the_same_in_column_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import tmr.metrics.features as F

    rng = np.random.default_rng(1)
    f, y = rng.standard_normal((50, 7)), rng.random((50, 3)) < 0.5
    whole = auroc_matrix(f, y)
    monkeypatch.setattr(F, "RANK_CHUNK", 2)
    np.testing.assert_allclose(auroc_matrix(f, y), whole)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_feature_equal_to_latent_scores_one_independent_feature_half(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 4000
    y = rng.random(n) < 0.5
    feats = np.stack([y.astype(float), -y.astype(float), rng.standard_normal(n)], axis=1)
    a = auroc_matrix(feats, y[:, None])[:, 0]
    assert a[0] == 1.0 and a[1] == 0.0
    # null AUROC standard error sqrt((n1 + n0 + 1) / (12 n1 n0)) ≈ 0.0065 at n1 ≈ n0 ≈ 2000:
    # 0.03 is more than 4.5 standard errors
    assert abs(a[2] - 0.5) < 0.03
    assert best_f1(feats[:, 0], y)[0] == 1.0


def test_latent_indicators_skip_rare_values_and_padding() -> None:
    lv = np.array([[0, -1]] * 30 + [[1, 2]] * 30 + [[2, 2]] * 5)  # value 2 of pos 0: 5 rows
    lat = latent_indicators({"a": lv}, min_count=10)
    assert list(zip(lat.position, lat.value, strict=True)) == [(0, 0), (0, 1), (1, 2)]
    assert lat.y[:30, 2].sum() == 0  # -1 is never a positive


def test_canonicity_of_a_permuted_dictionary_is_one() -> None:
    rng = np.random.default_rng(0)
    d1 = rng.standard_normal((40, 16))
    perm = rng.permutation(40)
    scaled = d1[perm] * rng.uniform(0.5, 3.0, (40, 1))  # norms do not matter
    assert canonicity(d1, scaled) == pytest.approx(1.0)
    assert canonicity(d1, -scaled) < 0.6  # signed for SAEs: a flipped atom is no match
    assert canonicity(d1, -scaled, signed=False) == pytest.approx(1.0)
    assert canonicity(d1, rng.standard_normal((40, 16))) < 0.6


def test_fvu_known_values() -> None:
    x = np.random.default_rng(0).standard_normal((100, 5))
    assert fvu(x, x) == 0.0
    assert fvu(x, np.broadcast_to(x.mean(0), x.shape)) == pytest.approx(1.0)


def planted_problem(seed: int, n: int = 1000) -> tuple[dict[str, np.ndarray], ToolFeatures]:
    """Levels 'root' (n,) in 0..3 and a planted 0/1 variable; a tool whose features are the
    root indicators (scales 1-4), noise (5-7) and the planted indicator last (8)."""
    rng = np.random.default_rng(seed)
    root = rng.integers(0, 4, n)
    planted = (rng.random(n) < 0.3).astype(np.int64)
    codes = np.concatenate([np.eye(4)[root], rng.standard_normal((n, 3)),
                            planted[:, None].astype(float)], axis=1)  # (n, 8)
    decoder = rng.standard_normal((8, 6))
    tf = ToolFeatures("sae-topk", 8, 0, codes, decoder, np.zeros(6))
    return {"root": root, "planted.flip": planted}, tf


def test_scores_on_planted_features_have_the_known_answer() -> None:
    levels, tf = planted_problem(0)
    lat = latent_indicators(levels)
    h = tf.codes @ tf.decoder
    rows = score_features(tf, lat, site="s", h=h, level_order=["root", "planted.flip"],
                          scales=[2, 4, 7, 8])

    def get(metric: str, scale: int, level: str = "") -> list[float]:
        return [r["value"] for r in rows
                if r["metric"] == metric and r["scale"] == scale and r["level"] == level]

    # root values 0, 1 have their own feature at scale 2, all four at scale 4
    assert sorted(get("auroc", 2, "root"))[-2:] == [1.0, 1.0]
    assert get("mono_fraction", 4, "root") == [1.0]
    assert get("mono_fraction", 2, "root") == [0.5]
    # the planted variable has its own feature (the last) only once it is kept
    assert get("mean_auroc", 7, "planted.flip")[0] < 0.75
    assert get("mean_auroc", 8, "planted.flip") == [1.0]
    assert get("mono_fraction", 8) == [1.0]
    assert get("fvu", 8) == [pytest.approx(0.0, abs=1e-12)]
    assert get("feature_depth", 4) == [0.0]  # every kept feature matches the root
    assert all(r["value"] == 1.0 for r in rows if r["metric"] == "f1" and r["scale"] == 8
               and r["value"] >= MONO_AUROC)


def pca_top_of(rows: list[dict]) -> int:
    return max(r["scale"] for r in rows if r["tool"] == "pca")


@pytest.mark.parametrize("seed", [0, 1])
def test_pca_discards_a_quiet_planted_bit_at_scale_1_and_the_bound_reveals_it(seed: int) -> None:
    """Activations (n, 3): coordinate 0 = 5·root bit (variance ≈ 6), coordinate 2 = 0.5·planted
    bit (Bernoulli(0.2): variance 0.04), noise of sd 0.01. PCA keeps coordinate 0 at scale 1
    and the planted coordinate from scale 2. The intervention toggles the bit, a move of 0.5
    along e₂ for every input; the head's logits are (0, 10·h₂ − 1) with label 0, so the margin
    is 1 on unmarked inputs and the certified (exact, linear) change at ε is 10·ε = 5 ≥ 1."""
    from torch import nn

    from tmr.rg.spectral import PCAScheme

    g = np.random.default_rng(seed)
    n = 2000
    bit = (g.random(n) < 0.2).astype(np.int64)
    h = 0.01 * g.standard_normal((n, 3))
    h[:, 0] += 5 * g.integers(0, 2, n)
    h[:, 2] += 0.5 * bit
    moved = h.copy()
    moved[:, 2] += 0.5 * (1 - 2 * bit)
    cg = PCAScheme()(h, 3)
    tf = ToolFeatures("pca", 3, 0, cg.coarse, cg.modes.T, cg.meta["mean"])
    lin = nn.Linear(3, 2).double()
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.copy_(torch.tensor([0.0, -1.0]))
        lin.weight[1, 2] = 10.0
    rows = planted_rows(tf, h, {"bit": bit}, site="input", model=nn.Sequential(lin),
                        labels=np.zeros(n, dtype=np.int64), counterfactual={"bit": moved},
                        n_bound=50)
    at = {(r["scale"], r["metric"]): r["value"] for r in rows}
    assert at[1, "planted_verdict"] == VERDICT_CODES["discarded"]
    assert at[2, "planted_verdict"] == at[3, "planted_verdict"] == VERDICT_CODES["kept"]
    # the tail at scale 1 is span(e₁, e₂) up to the noise's tilt (< 1e-3 here): ε_v = 0.5
    assert at[1, "planted_tail_displacement"] == pytest.approx(0.5, rel=1e-3)
    assert at[1, "planted_certified"] == pytest.approx(5.0, rel=1e-3)
    assert at[1, "planted_revealed"] == 1.0 and at[1, "planted_revealed_fraction"] == 1.0
    assert at[3, "planted_certified"] == 0.0 and at[3, "planted_revealed"] == 0.0
    from tmr.tools_report import planted_lines

    assert (at[1, "planted_tail_dim"], at[3, "planted_tail_dim"]) == (2.0, 0.0)
    text = "\n".join(planted_lines([{**r, "site": "s"} for r in rows]))
    assert "| pca | 3 | 2 | 1 | 1 | 0.5 | 5 | 1 | yes (100 %) |" in text
    # codes that drop the bit while their decoder spans the whole site: nothing to bound
    codes = np.stack([h[:, 0], g.standard_normal(n), g.standard_normal(n)], axis=1)
    blind = ToolFeatures("sae-topk", 3, 0, codes, np.eye(3), np.zeros(3))
    rows = planted_rows(blind, h, {"bit": bit}, site="input", scales=[3])
    assert {r["metric"]: r["value"] for r in rows}["planted_verdict"] == VERDICT_CODES[
        "discarded"]
    text = "\n".join(planted_lines([{**r, "site": "s"} for r in rows]))
    assert "| sae-topk | 3 | never | 3 |  |  |  |  | no tail: lost in the codes |" in text


def test_permuted_fit_is_canonical_with_itself() -> None:
    _, tf = planted_problem(1)
    perm = np.random.default_rng(0).permutation(8)
    twin = ToolFeatures("sae-topk", 8, 1, tf.codes[:, perm], tf.decoder[perm], tf.offset)
    rows = canonicity_rows([tf, twin], "s")
    assert [r["metric"] for r in rows] == ["canonicity_seeds"]
    assert rows[0]["value"] == pytest.approx(1.0)


def test_parse_widths() -> None:
    assert parse_widths("1x,256,2x", 128) == [128, 256]
    for bad in ("0", "-4", "0x", "abc", ""):
        with pytest.raises(ValueError):
            parse_widths(bad, 128)


RHM = {"name": "rhm", "vocab_size": 8, "n_classes": 8, "n_synonyms": 2, "tuple_size": 2,
       "n_levels": 3}
TINY = {"seed": 1, "device": "cpu", "model": {"kind": "cnn", "width": 8},
        "optim": {"steps": 24, "eval_every": 12, "batch_size": 32, "checkpoints": []},
        "probe": {"max_samples": 160, "inner_folds": 2, "ridge_grid": [1.0]}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run whose data file carries a planted variable (the root's parity)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tools")
    data = io.write_dataset(root / "rhm.h5", data_config_from_dict(
        {"seed": 0, "n_samples": 400, "generator": RHM, "splits": {"test_fraction": 0.3}}))
    with h5py.File(data, "a") as f:
        top = f["levels"][sorted(f["levels"])[0]][()].reshape(400, -1)[:, 0]
        f.require_group("aux").create_dataset("planted_parity", data=(top % 2).astype(np.int64))
    run(from_dict(TrainConfig, {**TINY, "data_path": str(data)}), root / "run")
    return root / "run"


def test_evaluate_tools_cli_writes_table_figures_and_report(run_dir: Path) -> None:
    res = CliRunner().invoke(app, ["evaluate-tools", str(run_dir), "--site", "layers.0.post",
                                   "--tools", "sae-topk,matryoshka,pca", "--widths", "1x,2x",
                                   "--seeds", "2", "--k", "4", "--min-steps", "20",
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    out = run_dir / "tools" / "layers.0.post"
    rows = read_rows(out / "tool_scores.csv")
    assert {r["tool"] for r in rows} == {"sae-topk", "matryoshka", "pca"}
    assert {"auroc", "f1", "mono_fraction", "fvu", "agreement", "delta_accuracy",
            "canonicity_seeds", "canonicity_widths", "planted_verdict",
            "planted_certified", "planted_revealed"} <= {r["metric"] for r in rows}
    parity = [r for r in rows if r["level"] == "planted.parity"]
    assert {r["tool"] for r in parity if r["metric"] == "planted_verdict"} == {
        "sae-topk", "matryoshka", "pca"}
    assert {r["value"] for r in parity if r["metric"] == "planted_verdict"} <= {-1.0, 0.0, 1.0}
    # every mode of PCA kept: nothing is discarded, so no move in the tail changes anything
    assert [r["value"] for r in parity if r["tool"] == "pca" and r["scale"] == pca_top_of(rows)
            and r["metric"] in ("planted_tail_displacement", "planted_certified")] == [0.0, 0.0]
    assert all(0.0 <= r["value"] <= 1.0 for r in rows if r["metric"] == "auroc")
    # PCA with every mode kept reproduces the site: FVU 0 and the full network's prediction
    pca_top = max(r["scale"] for r in rows if r["tool"] == "pca")
    assert [r["value"] for r in rows if r["tool"] == "pca" and r["scale"] == pca_top
            and r["metric"] == "agreement"] == [1.0]
    assert (out / "tools_canonicity.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list(out.glob("sae_topk_*_seed*.pt"))) == 4
    res = CliRunner().invoke(app, ["report", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert "Interpretability tools at layers.0.post" in (run_dir / "summary.md").read_text()
    page = (run_dir / "report.html").read_text()
    assert 'id="interpretability-tools"' in page and "tools_canonicity" in page
    assert "Planted variable parity" in page and "How to read the planted tables" in page
    res = CliRunner().invoke(app, ["bound", str(run_dir), "--site", "layers.0.post", "--scheme",
                                   "sae-topk", "--keep", "4", "--eps", "0.1",
                                   "--n-inputs", "8"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(("args", "message"), [
    (["--site", "layers.9.post"], "unknown site 'layers.9.post'"),
    (["--site", "layers.0.post", "--widths", "0"], "must be a positive integer"),
    (["--site", "layers.0.post", "--widths", "-2x"], "must be a positive integer"),
    (["--site", "layers.0.post", "--tools", "sae-gated"], "unknown tool 'sae-gated'"),
])
def test_evaluate_tools_cli_bad_input_is_one_message(run_dir: Path, args: list[str],
                                                     message: str) -> None:
    res = CliRunner().invoke(app, ["evaluate-tools", str(run_dir), *args])
    text = " ".join(res.output.split())  # rich wraps long lines
    assert res.exit_code == 2
    assert message in text and "Traceback" not in text


def test_evaluate_tools_cli_rejects_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["evaluate-tools", str(tmp_path), "--site", "layers.0.post"])
    assert res.exit_code == 2 and "not a training run" in " ".join(res.output.split())


def test_per_token_reads_transformer_sites_token_by_token(run_dir: Path,
                                                         tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data = run_dir.parent / "rhm.h5"
    cfg = {**TINY, "data_path": str(data),
           "model": {"kind": "transformer", "width": 8, "n_layers": 1, "n_heads": 2}}
    run(from_dict(TrainConfig, cfg), tmp_path / "tf")
    res = CliRunner().invoke(app, ["evaluate-tools", str(tmp_path / "tf"), "--site",
                                   "layers.0.post", "--tools", "sae-topk,pca", "--widths", "2x",
                                   "--k", "2", "--min-steps", "10", "--seeds", "1",
                                   "--per-token"])
    assert res.exit_code == 0, res.output
    rows = read_rows(tmp_path / "tf" / "tools" / "layers.0.post" / "tool_scores.csv")
    assert {r["d"] for r in rows} == {8}  # one row of width 8 per token
    assert {r["n"] for r in rows} == {120 * 8}  # the 120 test samples × 8 tokens
    # the leaves have one label per token, the root is repeated; level1/level2 do not align
    levels = {r["level"] for r in rows if r["metric"] == "mean_auroc"}
    assert "level3" in levels and "level1" not in levels and "level2" not in levels
    res = CliRunner().invoke(app, ["evaluate-tools", str(run_dir), "--site", "layers.0.post",
                                   "--per-token"])
    assert res.exit_code == 2 and "for transformer runs" in " ".join(res.output.split())


def test_planted_run_scores_real_interventions_end_to_end(tmp_path: Path) -> None:
    """A tiny run on planted RHM data: every fit gets a verdict per planted variable at every
    scale, the counterfactual activations are the intervened inputs' (the dangerous toggle
    moves every row), and the report carries the planted tables."""
    from tmr.tools_run import load_site

    torch.set_num_threads(1)
    data = io.write_dataset(tmp_path / "p.h5", data_config_from_dict(
        {"seed": 0, "n_samples": 500, "splits": {"test_fraction": 0.3},
         "generator": {**RHM, "n_synonyms": 4,
                       "planted": ["dangerous", "misaligned", "nuisance"]}}))
    run(from_dict(TrainConfig, {**TINY, "data_path": str(data)}), tmp_path / "run")
    sd = load_site(tmp_path / "run", "layers.0.post", n_train=200, n_eval=100)
    assert set(sd.counterfactual) == {"dangerous", "misaligned", "nuisance"}
    assert set(sd.planted) == {"dangerous", "misaligned", "nuisance", "true_root"}
    moved = np.abs(sd.counterfactual["dangerous"] - sd.h_eval).reshape(100, -1).sum(1)
    assert moved.shape == (100,) and np.all(moved > 0)  # the mark feeds layer 0 everywhere
    res = CliRunner().invoke(app, ["evaluate-tools", str(tmp_path / "run"), "--site",
                                   "layers.0.post", "--tools", "pca", "--n-bound", "20"])
    assert res.exit_code == 0, res.output
    rows = read_rows(tmp_path / "run" / "tools" / "layers.0.post" / "tool_scores.csv")
    verdicts = [(r["scale"], r["level"]) for r in rows if r["metric"] == "planted_verdict"]
    scales = sorted({r["scale"] for r in rows if r["metric"] == "fvu"})
    assert sorted(verdicts) == sorted((s, "planted." + v) for s in scales
                                      for v in sd.planted)
    assert CliRunner().invoke(app, ["report", str(tmp_path / "run")]).exit_code == 0
    assert "Planted variable dangerous" in (tmp_path / "run" / "summary.md").read_text()
    bad = CliRunner().invoke(app, ["evaluate-tools", str(tmp_path / "run"), "--site",
                                   "layers.0.post", "--tools", "pca", "--n-bound", "-1"])
    assert bad.exit_code == 2 and "n_bound=-1" in bad.output
