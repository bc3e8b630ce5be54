"""Sweeps: a grid over config keys, run through submitit (Slurm job arrays or local
processes), resumable; and ``collect`` to merge every run's tidy tables.

A sweep file (TOML)::

    train = "train_rhm_cnn.toml"     # base training config, relative to this file
    data = "rhm.toml"                # optional base data config (generated per data variant)
    batch_seeds = true               # train runs differing only in seed as one stacked model
    [set]                            # fixed overrides for every run
    "train.optim.steps" = 300
    [grid]                           # the cartesian product of these lists
    "data.generator.n_levels" = [2, 3, 4]
    "train.seed" = [0, 1, 2]
    [[cases]]                        # optional: a union of extra grids, each crossed
    "data.generator.n_synonyms" = [2]  # with [grid] (per-case lists, e.g. a range
    "data.splits.n_train" = [8, 64]    # of sizes that depends on the case)
    [[cases]]
    "data.generator.n_synonyms" = [4]
    "data.splits.n_train" = [32, 256]

Every job is one call of the pure, idempotent :func:`run_group` (generate the data
file if missing, train its runs, seeds stacked when ``batch_seeds``, then
``tmr.train.run`` probes each), so re-running a sweep skips finished runs,
resumes interrupted ones from their checkpoints, and the same file runs locally or
on a cluster. Data files are keyed by a hash of their resolved config, so runs that
differ only in training keys share one file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tmr.config import ConfigError, apply_overrides, from_dict, read_toml, to_dict

SWEEP_FILE = "sweep.json"


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep file: base configs, fixed overrides and the grid."""

    train: str
    data: str | None = None
    batch_seeds: bool = False
    set: dict[str, Any] = dataclasses.field(default_factory=dict)
    grid: dict[str, Any] = dataclasses.field(default_factory=dict)
    cases: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        for where, table in (("grid", self.grid),
                             *((f"cases[{i}]", c) for i, c in enumerate(self.cases))):
            for key, values in table.items():
                if not isinstance(values, list) or not values:
                    raise ValueError(f"{where}.{key} must be a non-empty list of values")
        case_keys = [sorted(c) for c in self.cases]
        if any(k != case_keys[0] for k in case_keys):
            raise ValueError(f"every [[cases]] table must set the same keys; got {case_keys}")
        both = sorted(set(case_keys[0] if case_keys else ()) & set(self.grid))
        if both:
            raise ValueError(f"keys {both} are in both [grid] and [[cases]]; keep one")
        for key in (*self.grid, *self.set, *(case_keys[0] if case_keys else ())):
            if key.split(".")[0] not in ("train", "data"):
                raise ValueError(f"sweep key {key!r} must start with 'train.' or 'data.'")
            if key.startswith("data.") and self.data is None:
                raise ValueError(f"sweep key {key!r} needs a base data config (data = ...)")


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of a sweep: its name, swept values and resolved configs."""

    name: str
    params: dict[str, Any]
    train: dict[str, Any]
    data: dict[str, Any] | None


def _short(key: str) -> str:
    return key.split(".")[-1]


def _fmt(value: Any) -> str:
    return json.dumps(value).replace('"', "").replace(" ", "").replace("/", "-")


def expand(path: str | Path) -> list[Job]:
    """Read a sweep file and expand its grid into resolved per-run configs
    (validated now, so a bad key fails before anything runs)."""
    from tmr.config import data_config_from_dict
    from tmr.train import TrainConfig

    path = Path(path)
    spec = from_dict(SweepSpec, read_toml(path))
    base_train = read_toml(path.parent / spec.train)
    base_data = read_toml(path.parent / spec.data) if spec.data else None
    jobs = []
    for i, params in enumerate(grid_points(spec)):
        overrides = {**spec.set, **params}
        train = apply_overrides(base_train, [_override(k, v, "train") for k, v in
                                             overrides.items() if k.startswith("train.")])
        data = None
        if base_data is not None:
            data = apply_overrides(base_data, [_override(k, v, "data") for k, v in
                                               overrides.items() if k.startswith("data.")])
            data = data_config_from_dict(data).to_dict()
        from_dict(TrainConfig, train)
        label = "_".join(f"{_short(k)}={_fmt(v)}" for k, v in params.items())
        jobs.append(Job(f"{i:04d}" + (f"_{label}" if label else ""), params, train, data))
    return jobs


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The swept values of every run: the product of ``grid``, or the union over
    ``cases`` of the product of each case's lists with ``grid``'s (case keys first)."""
    grids = [{**c, **spec.grid} for c in spec.cases] or [spec.grid]
    out = []
    for g in grids:
        keys = list(g)
        out += [dict(zip(keys, combo, strict=True))
                for combo in itertools.product(*(g[k] for k in keys))]
    return out


def _override(key: str, value: Any, prefix: str) -> str:
    return f"{key[len(prefix) + 1:]}={json.dumps(value)}"


def data_key(data: Mapping[str, Any]) -> str:
    """Stable short hash of a resolved data config."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def run_group(trains: list[dict[str, Any]], data: dict[str, Any] | None, out_dirs: list[str],
              data_dir: str, threads: int | None = None) -> list[str]:
    """Runs that share one data config: make the data file if needed (atomically;
    concurrent jobs that share it may both write, the rename keeps one whole file),
    train several seeds as one stacked model when there are several
    (:func:`tmr.train.batched.train_seeds`), then probe and plot each run."""
    import torch

    from tmr import io
    from tmr.config import data_config_from_dict
    from tmr.train import TrainConfig
    from tmr.train import run as train_run

    if threads:
        torch.set_num_threads(threads)
    if data is not None:
        data_path = Path(data_dir) / f"{data_key(data)}.h5"
        if not data_path.is_file():
            io.write_dataset(data_path, data_config_from_dict(data))
        trains = [{**t, "data_path": str(data_path)} for t in trains]
    cfgs = [from_dict(TrainConfig, t) for t in trains]
    if len(cfgs) > 1:
        from tmr.train.batched import train_seeds

        train_seeds(cfgs, out_dirs)
    return [str(train_run(c, d)) for c, d in zip(cfgs, out_dirs, strict=True)]


def is_done(run_dir: Path) -> bool:
    return (run_dir / "probe_scores.csv").is_file() and (run_dir / "layer_level.png").is_file()


def has_slurm() -> bool:
    return shutil.which("sbatch") is not None


def run_sweep(path: str | Path, out: str | Path, *, executor: str = "auto",
              max_parallel: int = 2, timeout_min: int = 60,
              slurm: Mapping[str, Any] | None = None,
              progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Expand ``path`` into ``out/runs/NAME`` and run every unfinished run.

    ``executor``: ``"slurm"`` (one submitit job array, ``slurm_array_parallelism =
    max_parallel``; ``slurm`` holds extra ``slurm_*`` parameters), ``"local"``
    (submitit's local processes, ``max_parallel`` at a time) or ``"auto"`` (Slurm
    when ``sbatch`` is on the PATH). Returns the run directories."""
    import submitit

    if executor == "auto":
        executor = "slurm" if has_slurm() else "local"
    if executor not in ("local", "slurm"):
        raise ConfigError(f"executor={executor!r} must be local, slurm or auto")
    if max_parallel < 1:
        raise ConfigError(f"max_parallel={max_parallel} must be positive")
    out = Path(out)
    spec = from_dict(SweepSpec, read_toml(path))
    jobs = expand(path)
    record = {"sweep_file": str(path), "spec": to_dict(spec),
              "runs": [{"name": j.name, "params": j.params} for j in jobs]}
    old = out / SWEEP_FILE
    if old.is_file() and json.loads(old.read_text())["runs"] != record["runs"]:
        raise ConfigError(f"{out} holds a different sweep; use a new --out directory")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    old.write_text(json.dumps(record, indent=2))
    dirs = [out / "runs" / j.name for j in jobs]
    todo = [(j, d) for j, d in zip(jobs, dirs, strict=True) if not is_done(d)]
    done = len(jobs) - len(todo)
    if progress:
        progress(done, len(jobs))
    if not todo:
        return dirs
    ex = submitit.AutoExecutor(folder=out / "submitit", cluster=executor)
    params: dict[str, Any] = {"timeout_min": timeout_min}
    if executor == "slurm":
        params["slurm_array_parallelism"] = max_parallel
        params.update(slurm or {})
    ex.update_parameters(**params)
    threads = max(1, (os.cpu_count() or 1) // max_parallel) if executor == "local" else None
    groups = _groups(todo) if spec.batch_seeds else [[jd] for jd in todo]
    waves = [groups] if executor == "slurm" else [groups[i:i + max_parallel]
                                                   for i in range(0, len(groups), max_parallel)]
    for wave in waves:
        with ex.batch():
            futures = [ex.submit(run_group, [j.train for j, _ in g], g[0][0].data,
                                 [str(d) for _, d in g], str(out / "data"), threads)
                       for g in wave]
        for fut, g in zip(futures, wave, strict=True):
            fut.result()  # re-raises a failed run's error with its traceback
            done += len(g)
            if progress:
                progress(done, len(jobs))
    return dirs


def _groups(items: list[tuple[Job, Path]]) -> list[list[tuple[Job, Path]]]:
    """Jobs that differ only in ``train.seed`` (same data), stacked into one."""
    groups: dict[str, list[tuple[Job, Path]]] = {}
    for job, d in items:
        key = json.dumps([{k: v for k, v in job.train.items() if k != "seed"}, job.data],
                         sort_keys=True)
        groups.setdefault(key, []).append((job, d))
    return list(groups.values())


def collect(sweep_dir: str | Path) -> tuple[Path, Path]:
    """Merge every finished run's ``probe_scores.csv`` (plus the swept values as
    columns and the run name) into ``collected.csv`` and draw ``collected.png``."""
    import csv


    sweep_dir = Path(sweep_dir)
    rec_file = sweep_dir / SWEEP_FILE
    if not rec_file.is_file():
        raise ConfigError(f"{sweep_dir} holds no {SWEEP_FILE}: is it a `tmr sweep` output?")
    runs = json.loads(rec_file.read_text())["runs"]
    keys = list(runs[0]["params"]) if runs else []
    rows: list[dict[str, Any]] = []
    missing = []
    for run in runs:
        scores = sweep_dir / "runs" / run["name"] / "probe_scores.csv"
        if not scores.is_file():
            missing.append(run["name"])
            continue
        with scores.open() as f:
            for row in csv.DictReader(f):
                rows.append({"run": run["name"], **{k: run["params"][k] for k in keys}, **row})
    if not rows:
        raise ConfigError(f"no finished runs in {sweep_dir}; run `tmr sweep` first")
    out_csv = sweep_dir / "collected.csv"
    tmp = out_csv.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out_csv)
    collect_final_metrics(sweep_dir)
    png = plot_collected(out_csv, keys, sweep_dir / "collected.png")
    return out_csv, png


#: columns of ``collected_metrics.csv`` after the run name and the swept values
FINAL_COLUMNS = ("n_train", "n_test", "step", "train_loss", "train_acc", "test_loss",
                 "test_acc", "test_error")


def collect_final_metrics(sweep_dir: str | Path) -> Path:
    """One row per finished run into ``collected_metrics.csv``: the swept values, the
    split sizes the run trained and evaluated on (its ``config.json``) and the last
    line of its ``metrics.jsonl``, with ``test_error = 1 - test_acc`` on the held-out
    split (the disjoint test set)."""
    import csv

    sweep_dir = Path(sweep_dir)
    runs = json.loads((sweep_dir / SWEEP_FILE).read_text())["runs"]
    keys = list(runs[0]["params"]) if runs else []
    rows = []
    for run in runs:
        d = sweep_dir / "runs" / run["name"]
        if not (d / "model.pt").is_file() or not (d / "metrics.jsonl").is_file():
            continue
        lines = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()
                 if x.strip()]
        data = json.loads((d / "config.json").read_text()).get("data", {})
        last = lines[-1]
        rows.append({"run": run["name"], **{k: run["params"][k] for k in keys},
                     "n_train": data.get("n_train"), "n_test": data.get("n_test"),
                     **{k: last.get(k) for k in FINAL_COLUMNS[2:-1]},
                     "test_error": 1.0 - last["test_acc"]})
    out = sweep_dir / "collected_metrics.csv"
    tmp = out.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["run", *keys, *FINAL_COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out)
    return out




def plot_collected(csv_path: Path, keys: list[str], png: Path,
                   metric: str | None = None) -> Path:
    """Best score per level (max over sites, final step, mean over positions) against
    the first swept key that is not a seed, mean ± std over the other keys (seeds).
    ``metric`` defaults to selectivity, or accuracy when the runs probed without a
    control task (``probe.control = false``). Reads only the collected table."""
    import csv
    from collections import defaultdict

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    with csv_path.open() as f:
        table = list(csv.DictReader(f))
    if metric is None:
        metric = ("selectivity" if any(r["metric"] == "selectivity" for r in table)
                  else "accuracy")
    rows = [r for r in table if r["metric"] == metric
            and r["position"] == "mean" and r["split"] == "test"]
    if not rows:
        raise ConfigError(f"{csv_path} has no '{metric}' rows on the test split to plot")
    xkey = next((k for k in keys if "seed" not in _short(k)), None)
    last: dict[str, int] = defaultdict(int)
    for r in rows:
        last[r["run"]] = max(last[r["run"]], int(r["step"]))
    best: dict[tuple[str, str], float] = defaultdict(lambda: -np.inf)  # (run, level) -> value
    xval: dict[str, Any] = {}
    levels: list[str] = []
    for r in rows:
        if int(r["step"]) != last[r["run"]]:
            continue
        key = (r["run"], r["level"])
        best[key] = max(best[key], float(r["value"]))
        xval[r["run"]] = r[xkey] if xkey else r["run"]
        if r["level"] not in levels:
            levels.append(r["level"])
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = sorted(set(xval.values()), key=lambda v: (float(v) if _isnum(v) else 0.0, str(v)))
    for level in levels:
        means, stds, xp = [], [], []
        for x in xs:
            vals = [v for (run, lv), v in best.items() if lv == level and xval[run] == x]
            if vals:
                xp.append(x)
                means.append(np.mean(vals))
                stds.append(np.std(vals))
        pos = [xs.index(x) for x in xp]
        ax.errorbar(pos, means, yerr=stds, marker="o", capsize=3, label=level)
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_xlabel(_short(xkey) if xkey else "run")
    ax.set_ylabel(f"best {metric} over sites (test)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(title="level", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png


def _isnum(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
