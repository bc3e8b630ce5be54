"""`tmr bound` on a tiny trained run: table, CSV and plot; certified never below PGD."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from tmr import io
from tmr.cli import app
from tmr.config import data_config_from_dict, from_dict
from tmr.train import TrainConfig, run

RHM = {"name": "rhm", "vocab_size": 8, "n_classes": 8, "n_synonyms": 2, "tuple_size": 2,
       "n_levels": 3}
TINY = {"seed": 1, "device": "cpu", "model": {"kind": "cnn", "width": 8},
        "optim": {"steps": 24, "eval_every": 12, "batch_size": 32, "checkpoints": []},
        "probe": {"max_samples": 160, "inner_folds": 2, "ridge_grid": [1.0]}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)  # tiny model on shared cores
    root = tmp_path_factory.mktemp("bound")
    data = io.write_dataset(root / "rhm.h5", data_config_from_dict(
        {"seed": 0, "n_samples": 400, "generator": RHM, "splits": {"test_fraction": 0.3}}))
    run(from_dict(TrainConfig, {**TINY, "data_path": str(data)}), root / "run")
    return root / "run"


def test_bound_command_writes_table_and_plot_with_certified_above_attack(run_dir: Path,
                                                                         tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bound", str(run_dir), "--site", "layers.1.post", "--keep",
                                   "4", "--eps", "0.1,1", "--n-inputs", "12", "--out",
                                   str(tmp_path)])
    assert res.exit_code == 0, res.output
    with (tmp_path / "bounds_layers.1.post.csv").open() as f:
        rows: list[dict[str, Any]] = list(csv.DictReader(f))
    assert [float(r["eps"]) for r in rows] == [0.1, 1.0]
    assert all(r["status"] == "certified" for r in rows)
    assert all(float(r["certified"]) >= float(r["empirical"]) > 0 for r in rows)
    assert 0 < float(rows[0]["tail_variance_fraction"]) < 1
    assert (tmp_path / "bounds_layers.1.post.png").read_bytes()[:4] == b"\x89PNG"


def test_bound_command_rejects_unknown_site_and_scheme(run_dir: Path) -> None:
    res = CliRunner().invoke(app, ["bound", str(run_dir), "--site", "layers.9.post"])
    assert res.exit_code == 2 and "unknown site" in res.output
    res = CliRunner().invoke(app, ["bound", str(run_dir), "--site", "layers.1.post",
                                   "--scheme", "ntk"])
    assert res.exit_code == 2 and "unknown scheme" in res.output


def test_natural_radius_is_the_median_tail_fluctuation_and_scales(run_dir: Path,
                                                                   tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bound", str(run_dir), "--site", "layers.1.post", "--keep",
                                   "4", "--eps", "natural,natural*2", "--n-inputs", "12",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    with (tmp_path / "bounds_layers.1.post.csv").open() as f:
        rows: list[dict[str, Any]] = list(csv.DictReader(f))
    scale = float(rows[0]["tail_natural_scale"])
    assert scale > 0
    assert [float(r["eps"]) for r in rows] == pytest.approx([scale, 2 * scale], rel=1e-5)
    for r in rows:  # a fraction, and the bigger ball can only certify fewer inputs
        assert 0 <= float(r["no_flip_certified"]) <= 1
    assert float(rows[1]["no_flip_certified"]) <= float(rows[0]["no_flip_certified"])


def test_natural_scale_is_the_quantile_of_projected_norms() -> None:
    import numpy as np

    from tmr.bounds import natural_scale
    from tmr.bounds.run import parse_eps

    rng = np.random.default_rng(0)
    acts = rng.normal(size=(501, 5)) * np.array([3.0, 2.0, 1.0, 0.5, 0.1])  # (n, d)
    V = np.eye(5)[:, 3:]  # (d, 2): the two smallest axes
    norms = np.linalg.norm((acts - acts.mean(0))[:, 3:], axis=1)
    assert natural_scale(acts, V) == pytest.approx(np.median(norms), rel=1e-12)
    assert natural_scale(acts, V, 0.9) == pytest.approx(np.quantile(norms, 0.9), rel=1e-12)
    assert parse_eps("0.5, natural ,natural*3") == [0.5, "natural", "natural*3"]
    for bad in ("natural*x", "naturalx", "abc", "natural*-1"):
        with pytest.raises(ValueError, match="bad radius"):
            parse_eps(bad)
