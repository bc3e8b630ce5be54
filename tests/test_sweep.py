"""Sweeps through submitit's local executor, resumption, collection, and
instance-batched training equal to separate runs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from tmr import io
from tmr.config import ConfigError, data_config_from_dict
from tmr.sweep import collect, expand, run_sweep
from tmr.train import load_train_config, prepare, train
from tmr.train.batched import seed_groups, train_seeds

CONFIGS = Path(__file__).parent.parent / "configs"
TINY = ['optim.steps=30', 'optim.eval_every=10', 'device="cpu"', 'model.width=8',
        'probe.max_samples=300', 'optim.log_checkpoints=0']


def _sweep_file(tmp: Path, batch: bool) -> Path:
    shutil.copy(CONFIGS / "train_rhm_cnn.toml", tmp / "train.toml")
    shutil.copy(CONFIGS / "rhm.toml", tmp / "data.toml")
    sets = "\n".join(f'"train.{o.split("=")[0]}" = {o.split("=", 1)[1]}' for o in TINY)
    path = tmp / "sweep.toml"
    path.write_text(f'train = "train.toml"\ndata = "data.toml"\nbatch_seeds = {str(batch).lower()}'
                    f'\n[set]\n{sets}\n"data.n_samples" = 1200\n'
                    '[grid]\n"data.generator.n_levels" = [2, 3]\n"train.seed" = [0, 1]\n')
    return path


def test_grid_expands_to_resolved_configs(tmp_path):
    jobs = expand(_sweep_file(tmp_path, False))
    assert len(jobs) == 4
    assert [j.params for j in jobs][1] == {"data.generator.n_levels": 2, "train.seed": 1}
    assert jobs[2].data["generator"]["n_levels"] == 3 and jobs[3].train["seed"] == 1
    assert jobs[0].name == "0000_n_levels=2_seed=0"


def test_bad_sweep_keys_fail_before_running(tmp_path):
    path = _sweep_file(tmp_path, False)
    path.write_text(path.read_text() + '"model.width" = [1]\n')
    with pytest.raises(ValueError, match=r"must start with 'train\.' or 'data\.'"):
        expand(path)
    path = _sweep_file(tmp_path, False)
    path.write_text(path.read_text() + '"train.optim.nope" = [1]\n')
    with pytest.raises(ConfigError, match=r"optim\.nope"):
        expand(path)


@pytest.mark.parametrize("batch", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_local_sweep_runs_resumes_only_missing_and_collects(tmp_path, batch):
    path = _sweep_file(tmp_path, batch)
    out = tmp_path / "out"
    dirs = run_sweep(path, out, executor="local", max_parallel=2)
    assert len(dirs) == 4
    for d in dirs:
        for name in ("config.json", "metrics.jsonl", "probe_scores.csv", "model.pt",
                     "layer_level.png"):
            assert (d / name).is_file(), (d, name)
    assert len(list((out / "data").glob("*.h5"))) == 2  # seeds share their data file
    # "kill" two runs midway: one lost everything, one lost its probes
    shutil.rmtree(dirs[1])
    (dirs[2] / "probe_scores.csv").unlink()
    untouched = {d: (d / "probe_scores.csv").stat().st_mtime_ns for d in (dirs[0], dirs[3])}
    run_sweep(path, out, executor="local", max_parallel=2)
    assert all((d / "probe_scores.csv").is_file() for d in dirs)
    assert {d: (d / "probe_scores.csv").stat().st_mtime_ns for d in untouched} == untouched
    table, png = collect(out)
    with table.open() as f:
        rows = list(csv.DictReader(f))
    assert {r["run"] for r in rows} == {d.name for d in dirs}
    assert {"data.generator.n_levels", "train.seed", "level", "site", "value"} <= set(rows[0])
    assert png.is_file() and png.stat().st_size > 0
    with (out / "collected_metrics.csv").open() as f:
        final = list(csv.DictReader(f))
    assert {r["run"] for r in final} == {d.name for d in dirs}
    for r in final:  # the last evaluation of each run, on its held-out split
        assert int(r["step"]) == 30 and int(r["n_test"]) > 0
        assert float(r["test_error"]) == pytest.approx(1 - float(r["test_acc"]))


def test_instance_batched_training_equals_separate_runs(tmp_path):
    data = tmp_path / "d.h5"
    io.write_dataset(data, data_config_from_dict(
        {"n_samples": 1000, "generator": {"name": "rhm", "n_levels": 2}}))
    cfgs = [load_train_config(CONFIGS / "train_rhm_cnn.toml",
                              [*TINY, f"seed={s}", f'data_path="{data}"']) for s in (0, 1, 2)]
    assert seed_groups(cfgs) == [[0, 1, 2]]
    train_seeds(cfgs, [tmp_path / f"b{s}" for s in range(3)])
    for s, cfg in enumerate(cfgs):
        sep = tmp_path / f"s{s}"
        sep.mkdir()
        train(prepare(cfg, sep), sep)
        a = [json.loads(x) for x in (tmp_path / f"b{s}" / "metrics.jsonl").read_text().splitlines()]
        b = [json.loads(x) for x in (sep / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in a] == [m["step"] for m in b]
        for ma, mb in zip(a, b, strict=True):
            # float32 batched vs unbatched matmuls: rounding-level differences only
            assert ma["test_loss"] == pytest.approx(mb["test_loss"], rel=1e-4, abs=1e-5)
        wa = torch.load(tmp_path / f"b{s}" / "model.pt", weights_only=False)["state_dict"]
        wb = torch.load(sep / "model.pt", weights_only=False)["state_dict"]
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="differ only in seed"):
        train_seeds([cfgs[0], load_train_config(CONFIGS / "train_rhm_cnn.toml",
                                                [*TINY, f'data_path="{data}"', "model.width=4"])],
                    [tmp_path / "x0", tmp_path / "x1"])


@pytest.mark.gpu
def test_instance_batched_training_on_cuda_matches_cpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    data = tmp_path / "d.h5"
    io.write_dataset(data, data_config_from_dict(
        {"n_samples": 1000, "generator": {"name": "rhm", "n_levels": 2}}))
    outs = {}
    for dev in ("cpu", "cuda"):
        cfgs = [load_train_config(CONFIGS / "train_rhm_cnn.toml",
                                  [*TINY, f"seed={s}", f'data_path="{data}"', f'device="{dev}"'])
                for s in (0, 1)]
        train_seeds(cfgs, [tmp_path / dev / str(s) for s in range(2)])
        outs[dev] = [json.loads(x) for x in (tmp_path / dev / "0" / "metrics.jsonl"
                                             ).read_text().splitlines()]
    assert outs["cpu"][-1]["test_loss"] == pytest.approx(outs["cuda"][-1]["test_loss"], rel=1e-3)


def test_bf16_mixed_precision_trains_and_keeps_float32_weights(tmp_path):
    data = tmp_path / "d.h5"
    io.write_dataset(data, data_config_from_dict(
        {"n_samples": 1000, "generator": {"name": "rhm", "n_levels": 2}}))
    finals = {}
    for amp in ("off", "bf16"):
        cfg = load_train_config(CONFIGS / "train_rhm_cnn.toml",
                                [*TINY, f'data_path="{data}"', f'optim.amp="{amp}"',
                                 "optim.steps=60"])
        out = tmp_path / amp
        out.mkdir()
        train(prepare(cfg, out), out)
        finals[amp] = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        weights = torch.load(out / "model.pt", weights_only=False)["state_dict"]
        assert all(w.dtype == torch.float32 for w in weights.values() if w.is_floating_point())
    first, last = finals["bf16"][0]["test_loss"], finals["bf16"][-1]["test_loss"]
    assert last < first  # it learns
    # bf16 keeps 8 bits of mantissa: over 60 steps the losses stay within a few percent
    assert last == pytest.approx(finals["off"][-1]["test_loss"], rel=0.1)
    with pytest.raises(ConfigError, match=r"optim\.amp"):
        load_train_config(CONFIGS / "train_rhm_cnn.toml", ['optim.amp="fp8"'])
