"""Training runs: outputs, determinism, resume, bad input, CLI, and a CNN learning the RHM."""

from __future__ import annotations

import csv
import dataclasses
import json
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import generators
from generators import HierarchicalSample
from tests.conftest import RHM
from tmr import io
from tmr.cli import app
from tmr.config import data_config_from_dict, from_dict
from tmr.probes import COLUMNS
from tmr.train import TrainConfig, checkpoint_steps, load_run, read_metrics, run

TINY = {"seed": 1, "device": "cpu",
        "model": {"kind": "cnn", "width": 8},
        "optim": {"steps": 24, "eval_every": 8, "batch_size": 32, "checkpoints": [0, 8]},
        "probe": {"max_samples": 160, "inner_folds": 2, "ridge_grid": [0.01, 1.0]}}


def _config(rhm_file: Path, **overrides: Any) -> TrainConfig:
    raw = json.loads(json.dumps(TINY))
    for key, value in overrides.items():
        node = raw
        *path, last = key.split("__")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return from_dict(TrainConfig, {**raw, "data_path": str(rhm_file)})


def test_tiny_pipeline_writes_every_output_with_documented_columns(rhm_file: Path,
                                                                   tmp_path: Path) -> None:
    png = run(_config(rhm_file), tmp_path / "run")
    out = tmp_path / "run"
    assert png == out / "layer_level.png" and png.read_bytes()[:4] == b"\x89PNG"
    for name in ("config.json", "metrics.jsonl", "probe_scores.csv", "model.pt",
                 "checkpoints/step_0000000.pt", "checkpoints/step_0000008.pt",
                 "checkpoints/step_0000024.pt"):
        assert (out / name).is_file(), name
    record = json.loads((out / "config.json").read_text())
    assert {"config", "seed", "versions", "device", "git_commit", "data"} <= set(record)
    assert record["device"] == "cpu" and record["versions"]["torch"] == torch.__version__
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == [0, 8, 16, 24]
    assert {"train_loss", "train_acc", "test_loss", "test_acc"} <= set(metrics[-1])
    with (out / "probe_scores.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == COLUMNS
    assert {r["site"] for r in rows} == {"embed", "layers.0.post", "layers.1.post",
                                         "layers.2.post", "head"}
    assert {r["level"] for r in rows} == {"root", "level1", "level2", "level3"}
    assert {r["metric"] for r in rows} >= {"accuracy", "control_accuracy", "selectivity"}
    leaves = [r for r in rows if r["level"] == "level3" and r["metric"] == "accuracy"
              and r["split"] == "test" and r["site"] == "embed"]
    assert sorted(r["position"] for r in leaves) == [*map(str, range(8)), "mean"]
    # one-hot leaves are linearly decodable from the embedding (each symbol is a column);
    # with 40 held-out rows a symbol missing from the 120 probe-training rows costs 1/8
    assert float(next(r for r in leaves if r["position"] == "mean")["value"]) > 0.85


def test_finished_run_is_skipped_and_load_run_restores_the_model(rhm_file: Path,
                                                                 tmp_path: Path) -> None:
    cfg = _config(rhm_file, optim__checkpoints=[])
    run(cfg, tmp_path)
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    run(cfg, tmp_path)
    assert stamp == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    model, loaded_cfg, path = load_run(tmp_path)
    assert loaded_cfg == cfg and path == rhm_file
    state = torch.load(tmp_path / "model.pt", weights_only=False)
    x = torch.randint(0, 8, (4, 8))
    from tmr.models import InputSpec, ModelConfig, build_model
    again = build_model(from_dict(ModelConfig, state["model"]), InputSpec(**state["spec"]),
                        state["n_targets"], state["n_classes"])
    again.load_state_dict(state["state_dict"])
    torch.testing.assert_close(model(x), again(x))


def test_resume_after_interruption_equals_an_uninterrupted_run(rhm_file: Path,
                                                               tmp_path: Path) -> None:
    cfg = _config(rhm_file, probe__sites=["layers.2.post"])
    run(cfg, tmp_path / "straight")

    def stop_at_13(stage: str, done: int, total: int) -> None:
        if stage == "train" and done == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "resumed", progress=stop_at_13)
    assert (tmp_path / "resumed/checkpoints/resume.pt").is_file()
    assert not (tmp_path / "resumed/model.pt").exists()
    assert not (tmp_path / "resumed/probe_scores.csv").exists()
    run(cfg, tmp_path / "resumed")
    assert read_metrics(tmp_path / "resumed") == read_metrics(tmp_path / "straight")
    assert ((tmp_path / "resumed/probe_scores.csv").read_text()
            == (tmp_path / "straight/probe_scores.csv").read_text())


def test_different_seeds_give_different_runs(rhm_file: Path, tmp_path: Path) -> None:
    cfg = _config(rhm_file, probe__sites=["head"])
    run(cfg, tmp_path / "a")
    run(_config(rhm_file, probe__sites=["head"], seed=2), tmp_path / "b")
    assert read_metrics(tmp_path / "a") != read_metrics(tmp_path / "b")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"data__vocab_size": 5}, "vocabulary size 8"),
    ({"data__generator": "pcfg"}, "made by generator 'rhm'"),
    ({"task__kind": "level", "task__level": "level9"}, "level 'level9' is not in"),
    ({"probe__levels": ["leaves"]}, "level 'leaves' is not in"),
    ({"probe__sites": ["layers.7.post"]}, "matches no site"),
    ({"model__filter_size": 3}, "filter_size"),
    ({"task__kind": "next"}, "causal"),
])
def test_bad_input_stops_before_training(rhm_file: Path, tmp_path: Path, overrides: dict,
                                         message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(_config(rhm_file, **overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bad_device_is_rejected(rhm_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="device='tpu'"):
        _config(rhm_file, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            run(_config(rhm_file, device="cuda"), tmp_path / "run")


def test_non_empty_directory_of_another_config_is_refused(rhm_file: Path, tmp_path: Path) -> None:
    run(_config(rhm_file, probe__sites=["head"]), tmp_path)
    with pytest.raises(ValueError, match=r"different config \(optim.lr"):
        run(_config(rhm_file, probe__sites=["head"], optim__lr=0.5), tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no run"):
        run(_config(rhm_file), tmp_path / "other")


@pytest.mark.parametrize("task", [
    {"task__kind": "masked", "model__kind": "mlp"},
    {"task__kind": "next", "model__kind": "transformer", "model__causal": True,
     "model__readout": "position", "model__n_heads": 2},
    {"task__kind": "level", "task__level": "level1", "model__kind": "mlp"},
])
def test_token_tasks_train_and_probe(rhm_file: Path, tmp_path: Path, task: dict) -> None:
    run(_config(rhm_file, probe__sites=["embed"], probe__control=False, **task), tmp_path)
    last = read_metrics(tmp_path)[-1]
    assert 0.0 <= last["test_acc"] <= 1.0 and last["test_loss"] > 0


def test_probes_over_training_time_cover_every_saved_step(rhm_file: Path, tmp_path: Path) -> None:
    cfg = _config(rhm_file, probe__steps="checkpoints", probe__sites=["layers.2.post"],
                  probe__levels=["root"])
    run(cfg, tmp_path)
    rows = list(csv.DictReader((tmp_path / "probe_scores.csv").open()))
    assert sorted({int(r["step"]) for r in rows}) == [0, 8, 24]
    model, _, _ = load_run(tmp_path, step=8)
    state = torch.load(tmp_path / "checkpoints/step_0000008.pt", weights_only=False)
    torch.testing.assert_close(model.state_dict(), state["state_dict"])
    with pytest.raises(ValueError, match="saved steps"):
        load_run(tmp_path, step=9)


def test_checkpoint_steps_are_log_spaced_and_include_the_end() -> None:
    cfg = _config(Path("x"), optim__log_checkpoints=4, optim__checkpoints=[5]).optim
    assert checkpoint_steps(cfg, 1000) == [1, 5, 10, 100, 1000]


def test_cli_train_and_probe_prints_best_sites_and_heatmap(rhm_file: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('seed = 1\n[model]\nkind = "mlp"\nwidth = 8\n'
                   '[optim]\nsteps = 10\neval_every = 5\n'
                   '[probe]\nmax_samples = 120\ninner_folds = 2\nsites = ["embed", "head"]\n')
    runner = CliRunner()
    res = runner.invoke(app, ["train-and-probe", str(cfg), "--data", str(rhm_file), "--out",
                              str(tmp_path / "r"), "--device", "cpu", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "best site per level" in res.output and "layer_level.png" in res.output
    res = runner.invoke(app, ["plot", str(tmp_path / "r"), "--metric", "accuracy", "--out",
                              str(tmp_path / "acc.png")])
    assert res.exit_code == 0 and (tmp_path / "acc.png").is_file()
    bad = runner.invoke(app, ["train-and-probe", str(cfg), "--data", str(rhm_file), "--out",
                              str(tmp_path / "r2"), "--set", "data.vocab_size=3"])
    assert bad.exit_code == 2 and "vocabulary size" in bad.output


@pytest.mark.slow
def test_hierarchical_cnn_learns_the_rhm_root(tmp_path: Path) -> None:
    # v=8, m=2, s=2, L=3: P_max = 8 * 2**7 = 1024 distinct inputs; 4000 samples
    path = io.write_dataset(tmp_path / "rhm.h5", data_config_from_dict(
        {"seed": 3, "n_samples": 4000, "generator": RHM}))
    cfg = from_dict(TrainConfig, {
        "seed": 0, "device": "cpu", "data_path": str(path),
        "model": {"kind": "cnn", "width": 64},
        "optim": {"lr": 3e-3, "steps": 600, "eval_every": 100},
        "probe": {"sites": ["layers.2.post"], "max_samples": 400, "control": False}})
    run(cfg, tmp_path / "run")
    assert read_metrics(tmp_path / "run")[-1]["test_acc"] > 0.9


# ----------------------------------------------------------------------------- other data

@dataclasses.dataclass(frozen=True)
class FakeConfig:
    kind: str = "image"


@dataclasses.dataclass(frozen=True, eq=False)
class FakeWorld:
    kind: str


def _fake_make_world(*, kind: str, rng: Any = None) -> FakeWorld:
    return FakeWorld(kind)


def _fake_sample(world: FakeWorld, n_samples: int, *, rng: Any = None) -> HierarchicalSample:
    gen = generators.as_generator(rng)
    if world.kind == "image":  # (n, 4, 4) float images; level 1 = which quadrant is bright
        quad = gen.integers(0, 4, n_samples)
        x = gen.random((n_samples, 4, 4)).astype(np.float32) * 0.5
        for q in range(4):
            r, c = divmod(q, 2)
            x[quad == q, 2 * r:2 * r + 2, 2 * c:2 * c + 2] += 1.0
        levels = ((quad // 2)[:, None], quad[:, None])
        aux: dict[str, np.ndarray] = {}
    else:  # padded token sequences (n, 6) with -1 after the length
        lengths = gen.integers(2, 7, n_samples)
        tokens = gen.integers(0, 5, (n_samples, 6))
        x = np.where(np.arange(6)[None, :] < lengths[:, None], tokens, -1).astype(np.int16)
        levels = ((tokens[:, 0] % 2)[:, None], tokens[:, :1])
        aux = {"lengths": lengths}
    return HierarchicalSample(x=x, levels=levels, level_names=("coarse", "fine"), world=world,
                              meta={}, aux=aux)


@pytest.mark.parametrize(("kind", "model"), [("image", "cnn"), ("image", "mlp"),
                                              ("padded", "transformer")])
def test_other_generators_files_train_and_probe_unchanged(tmp_path: Path, monkeypatch: Any,
                                                          kind: str, model: str) -> None:
    module = types.SimpleNamespace(World=FakeWorld, make_world=_fake_make_world,
                                   sample=_fake_sample)
    monkeypatch.setitem(generators.REGISTRY, "fake",
                        generators.GeneratorSpec("fake", FakeConfig, module))  # type: ignore
    path = io.write_dataset(tmp_path / "d.h5", data_config_from_dict(
        {"seed": 0, "n_samples": 400, "generator": {"name": "fake", "kind": kind}}))
    cfg = from_dict(TrainConfig, {
        "device": "cpu", "data_path": str(path),
        "model": {"kind": model, "width": 8, "n_heads": 2, "filter_size": 2},
        "optim": {"steps": 40, "eval_every": 20, "lr": 1e-2},
        "probe": {"sites": ["embed", "head"], "max_samples": 200, "inner_folds": 2}})
    run(cfg, tmp_path / "run")
    rows = list(csv.DictReader((tmp_path / "run/probe_scores.csv").open()))
    assert {r["level"] for r in rows} == {"coarse", "fine"}
    if kind == "image":  # the bright quadrant is linearly readable from the pixels
        acc = [float(r["value"]) for r in rows if r["site"] == "embed" and r["level"] == "fine"
               and r["metric"] == "accuracy" and r["split"] == "test"]
        assert acc[0] > 0.9
