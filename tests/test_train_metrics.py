"""Layer metrics recorded over training and `tmr report` on a tiny real run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from tmr.cli import app
from tmr.config import from_dict
from tmr.metrics.table import COLUMNS, read_table
from tmr.train import TrainConfig, checkpoint_steps, run

TINY = {"seed": 1, "device": "cpu",
        "model": {"kind": "cnn", "width": 8},
        "optim": {"steps": 24, "eval_every": 8, "batch_size": 32, "log_checkpoints": 3},
        "probe": {"max_samples": 160, "inner_folds": 2, "ridge_grid": [0.01, 1.0],
                  "sites": ["embed", "layers.*.post"], "levels": ["root"], "steps": "checkpoints"},
        "metrics": {"metrics": ["effective_rank", "knn_mi", "twonn", "mi_input",
                                "separation"], "knn_samples": 100}}


def _config(rhm_file: Path, **metrics: Any) -> TrainConfig:
    raw = json.loads(json.dumps(TINY))
    raw["metrics"].update(metrics)
    return from_dict(TrainConfig, {**raw, "data_path": str(rhm_file)})


@pytest.fixture(scope="module")
def run_dir(rhm_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    run(_config(rhm_file), out)
    return out


def test_metrics_are_recorded_at_every_saved_step_with_probe_columns(run_dir: Path) -> None:
    rows = read_table(run_dir / "layer_metrics.csv")
    assert set(rows[0]) == set(COLUMNS)
    saved = checkpoint_steps(_config(Path("x")).optim, 24)
    assert saved == [1, 5, 24]
    assert sorted({int(r["step"]) for r in rows}) == saved  # type: ignore[call-overload]
    assert {r["metric"] for r in rows} == set(TINY["metrics"]["metrics"])  # type: ignore[index]
    assert {r["site"] for r in rows} == {"embed", "layers.0.post", "layers.1.post",
                                         "layers.2.post"}
    # probes ran at the same checkpoints, so both tables share their steps
    probes = read_table(run_dir / "probe_scores.csv")
    assert {r["step"] for r in probes} == set(saved)


def test_fixed_embedding_metrics_do_not_change_over_training(run_dir: Path) -> None:
    # the one-hot embedding has no parameters: its metrics on the same fixed rows are
    # identical at every step (same rows are used at every checkpoint)
    rows = read_table(run_dir / "layer_metrics.csv")
    for metric in ("effective_rank", "separation", "mi_input"):
        values = {r["value"] for r in rows
                  if r["site"] == "embed" and r["metric"] == metric and r["level"] in ("", "root")}
        assert len(values) == 1, (metric, values)


def test_rerun_skips_a_complete_table_and_recomputes_a_missing_one_identically(
        rhm_file: Path, run_dir: Path) -> None:
    table = run_dir / "layer_metrics.csv"
    before, mtime = table.read_bytes(), table.stat().st_mtime_ns
    run(_config(rhm_file), run_dir)
    assert table.stat().st_mtime_ns == mtime
    table.unlink()
    run(_config(rhm_file), run_dir)
    assert table.read_bytes() == before


def test_empty_metric_list_writes_no_table(rhm_file: Path, tmp_path: Path) -> None:
    run(_config(rhm_file, metrics=[]), tmp_path)
    assert (tmp_path / "probe_scores.csv").is_file()
    assert not (tmp_path / "layer_metrics.csv").exists()


def test_unknown_metric_and_bad_steps_are_rejected_with_the_choices(rhm_file: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown names.*'nc9'.*choose from"):
        _config(rhm_file, metrics=["nc9"])
    with pytest.raises(ValueError, match=r"metrics\.steps"):
        _config(rhm_file, steps="sometimes")


def test_report_command_writes_html_and_claims_summary(run_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    page, summary = tmp_path / "report.html", tmp_path / "summary.md"
    assert "data:image/png;base64," in page.read_text()
    text = summary.read_text()
    assert "Paper 000 claims" in text and "| (3) |" in text
    assert "paper 000 claims" in result.output


def test_report_command_on_a_run_without_metrics_fails_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "layer_metrics.csv" in result.output


def test_report_includes_saved_coarse_grain_and_bound_outputs(run_dir: Path,
                                                              tmp_path: Path) -> None:
    runner = CliRunner()
    cg = runner.invoke(app, ["coarse-grain", str(run_dir), "--site", "layers.0.post",
                             "--scheme", "pca", "--budget", "0.1"])
    assert cg.exit_code == 0, cg.output
    bd = runner.invoke(app, ["bound", str(run_dir), "--site", "layers.0.post", "--keep", "2",
                             "--eps", "0.5"])
    assert bd.exit_code == 0, bd.output
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "summary.md").read_text()
    assert "## coarse-grain layers.0.post_pca" in text
    assert "## bounds bounds_layers.0.post" in text and "certified" in text
    page = (tmp_path / "report.html").read_text()
    assert "coarse-grain layers.0.post_pca" in page and "bounds bounds_layers.0.post" in page
    # each saved figure is embedded as it was written, not redrawn
    n_saved = len(list((run_dir / "coarse_grain").glob("*/*.png"))) + len(
        list((run_dir / "bounds").glob("*.png")))
    assert page.count("data:image/png;base64,") >= n_saved + 1
