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
from tmr.tools import ToolFeatures, canonicity_rows, parse_widths, read_rows, score_features
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
    # the planted variable is only kept once its feature (the last) is kept
    assert get("planted_kept", 7, "planted.flip") == [0.0]
    assert get("planted_kept", 8, "planted.flip") == [1.0]
    assert get("mono_fraction", 8) == [1.0]
    assert get("fvu", 8) == [pytest.approx(0.0, abs=1e-12)]
    assert get("feature_depth", 4) == [0.0]  # every kept feature matches the root
    assert all(r["value"] == 1.0 for r in rows if r["metric"] == "f1" and r["scale"] == 8
               and r["value"] >= MONO_AUROC)


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
            "canonicity_seeds", "canonicity_widths", "planted_kept"} <= {r["metric"]
                                                                         for r in rows}
    assert any(r["level"] == "planted.parity" for r in rows)
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
