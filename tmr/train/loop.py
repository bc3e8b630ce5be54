"""Train a small network on a data file and probe every site against every level.

``run(config, out_dir)`` is pure and idempotent: every stage (train, probe, plot)
skips when its output exists, training resumes from ``checkpoints/resume.pt``,
and all files are written atomically. The run seed spawns the named streams
``init`` (weights), ``train`` (batch order, masks), ``split`` and ``probe``
(:func:`generators.streams`); torch randomness comes only from ``torch.Generator``
objects seeded from them, so the same seed on CPU gives identical metrics.

Run directory::

    config.json                 resolved config, seed, versions, device, git commit
    metrics.jsonl               one line per evaluation: step, losses, accuracies
    model.pt                    final weights and what is needed to rebuild the model
    checkpoints/step_NNNNNNN.pt weights at the chosen steps; resume.pt for resuming
    probe_scores.csv            tidy probe table (tmr.probes.COLUMNS)
    posterior_ceiling.csv       PCFG data with soft levels: the MAP labeller's scores
    layer_metrics.csv           layer metrics at the chosen steps (tmr.train.metrics)
    layer_level.png             selectivity heatmap drawn from the CSV (tmr.plots)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from generators import streams
from tmr import io
from tmr.config import ConfigError, apply_overrides, from_dict, read_toml, to_dict
from tmr.metrics.table import write_table_atomic
from tmr.models import HookedModel, InputSpec, ModelConfig, build_model
from tmr.probes import (
    ProbeConfig,
    collect_activations,
    match_sites,
    posterior_ceiling,
    probe_grid,
)
from tmr.train.data_adapter import TaskData, prepare_task
from tmr.train.metrics import MetricsConfig, record_metrics

Progress = Callable[[str, int, int], None]
SEED_STREAMS = ("init", "train", "split", "probe")
DEVICES = ("auto", "cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """``kind``: "root" (default), "level" (predict level ``level`` at every position),
    "masked" (masked-token, ``mask_prob``), "next" (next token; needs a causal
    transformer) or "aux" (predict the per-sample integer/boolean aux array
    ``target``, indexed along its trailing axes by ``index``: an int picks that entry,
    a string names an (n,) integer aux array giving each sample's own entry, e.g.
    percolation ``target = "spans", index = ["x_level", 0]`` = spanning along axis 0
    at the sample's p; see :func:`tmr.train.data_adapter.aux_target`)."""

    kind: str = "root"
    level: str | None = None
    mask_prob: float = 0.15
    target: str | None = None
    index: tuple[int | str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("root", "level", "masked", "next", "aux"):
            raise ValueError(f"task.kind={self.kind!r} must be root, level, masked, next "
                             "or aux")
        if self.kind == "level" and not self.level:
            raise ValueError("task.kind='level' needs task.level = a level name")
        if self.kind == "aux" and not self.target:
            raise ValueError("task.kind='aux' needs task.target = the name of an aux array")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"task.mask_prob={self.mask_prob} must be in (0, 1)")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Optimiser ("adamw" or "sgd"), batch size, length (``steps``, or ``epochs`` if
    set), evaluation every ``eval_every`` steps, weight checkpoints at ``checkpoints``
    plus ``log_checkpoints`` log-spaced steps (the final step is always saved)."""

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 128
    steps: int = 1000
    epochs: int | None = None
    eval_every: int = 100
    checkpoints: tuple[int, ...] = ()
    log_checkpoints: int = 0
    amp: str = "off"

    def __post_init__(self) -> None:
        if self.amp not in ("off", "bf16"):
            raise ValueError(f"optim.amp={self.amp!r} must be 'off' or 'bf16'")
        if self.name not in ("adamw", "sgd"):
            raise ValueError(f"optim.name={self.name!r} must be 'adamw' or 'sgd'")
        if self.lr <= 0 or self.batch_size < 1 or self.steps < 1 or self.eval_every < 1:
            raise ValueError("optim.lr, batch_size, steps and eval_every must be positive")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"optim.epochs={self.epochs} must be positive")


@dataclasses.dataclass(frozen=True)
class DataCheck:
    """What the config expects of the data file (checked before training)."""

    generator: str | None = None
    vocab_size: int | None = None
    levels: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    device: str = "auto"
    data_path: str = ""
    data: DataCheck = dataclasses.field(default_factory=DataCheck)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    probe: ProbeConfig = dataclasses.field(default_factory=ProbeConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed={self.seed} must be non-negative")
        resolve_device(self.device, check_available=False)


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a training config from TOML and apply dotted ``--set`` overrides."""
    return from_dict(TrainConfig, apply_overrides(read_toml(path), overrides))


def resolve_device(device: str, check_available: bool = True) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``."""
    base, _, index = device.partition(":")
    if base not in DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise ValueError(f"device={device!r} is not one of auto, cpu, cuda, cuda:N")
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda" and check_available:
        n = torch.cuda.device_count()
        if n == 0 or (index and int(index) >= n):
            raise ValueError(f"device={device!r} is not available ({n} CUDA devices); "
                             "use --device cpu or auto")
    return torch.device(device)


def _torch_generator(ss: np.random.SeedSequence, device: str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(ss.generate_state(1, np.uint64)[0]) & (2**63 - 1))
    return g


# ----------------------------------------------------------------------------- files

def _atomic_save(obj: Any, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _atomic_text(text: str, path: Path) -> None:
    with io.atomic_path(path) as tmp:
        tmp.write_text(text)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _check_out_dir(out: Path, cfg_dict: dict[str, Any]) -> None:
    """A non-empty ``out`` must be a run of the same config."""
    if not out.exists() or not any(out.iterdir()):
        return
    cfg_file = out / "config.json"
    if not cfg_file.is_file():
        raise ValueError(f"output directory {str(out)!r} is not empty and holds no run "
                         "(no config.json); choose an empty or new directory")
    old = json.loads(cfg_file.read_text())["config"]
    # runs recorded before a config table existed read with its defaults
    with contextlib.suppress(ConfigError, ValueError, TypeError):
        old = to_dict(from_dict(TrainConfig, old))
    if old != cfg_dict:
        diff = _first_difference(old, cfg_dict)
        raise ValueError(f"output directory {str(out)!r} holds a run of a different config "
                         f"({diff}); use a new --out directory or the same config")


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else k)
    return f"{where}: {a!r} there, {b!r} now"


# ----------------------------------------------------------------------------- set-up

@dataclasses.dataclass
class Prepared:
    """Everything validated before training starts."""

    cfg: TrainConfig  # with the model resolved against the data (CNN filter size)
    given: TrainConfig  # as passed in (what config.json records and resumes compare)
    device: torch.device
    data: TaskData
    spec: InputSpec
    sites: list[str]
    seeds: dict[str, np.random.SeedSequence]


def prepare(cfg: TrainConfig, out_dir: str | Path) -> Prepared:
    """Validate the config against the data file, the device and ``out_dir`` (raises
    one ValueError with the fix before anything is trained or written)."""
    if not cfg.data_path:
        raise ValueError("no data file: pass --data FILE.h5 (or set data_path in the config)")
    device = resolve_device(cfg.device)
    _check_out_dir(Path(out_dir), to_dict(cfg))
    seeds = streams(cfg.seed, *SEED_STREAMS)
    data = prepare_task(cfg.data_path, cfg.task, cfg.data, cfg.probe, seeds["split"])
    given, model_cfg = cfg, cfg.model
    if model_cfg.kind == "cnn" and model_cfg.filter_size is None:
        model_cfg = dataclasses.replace(model_cfg, filter_size=data.tuple_size)
    if cfg.task.kind == "next" and not (model_cfg.kind == "transformer" and model_cfg.causal):
        raise ValueError("task.kind='next' needs model.kind='transformer' with model.causal=true")
    cfg = dataclasses.replace(cfg, model=model_cfg)
    model = build_model(cfg.model, data.spec, data.n_targets, data.n_classes)
    sites = match_sites(cfg.probe.sites, model.sites)
    return Prepared(cfg, given, device, data, data.spec, sites, seeds)


def _build(p: Prepared) -> HookedModel:
    gen = _torch_generator(p.seeds["init"])
    return build_model(p.cfg.model, p.spec, p.data.n_targets, p.data.n_classes, gen).to(p.device)


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for the forward pass of a training step: ``bf16`` autocasts
    matrix products to bfloat16 (CPU or CUDA; float32's exponent range, so no loss
    scaling is needed); ``off`` runs in float32. Weights, optimiser state,
    evaluation and probes stay float32."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def total_steps(cfg: OptimConfig, n_train: int) -> int:
    if cfg.epochs is None:
        return cfg.steps
    return cfg.epochs * math.ceil(n_train / cfg.batch_size)


def checkpoint_steps(cfg: OptimConfig, total: int) -> list[int]:
    """Explicit steps, ``log_checkpoints`` log-spaced steps in [1, total], and total."""
    steps = {s for s in cfg.checkpoints if 0 <= s <= total} | {total}
    if cfg.log_checkpoints:
        steps |= {round(float(s)) for s in np.geomspace(1, total, cfg.log_checkpoints)}
    return sorted(steps)


# ----------------------------------------------------------------------------- training

def _batch_rows(seed: np.random.SeedSequence, step: int, n: int, bs: int) -> torch.Tensor:
    """Rows of the batch at ``step``: epoch ``e`` is a permutation drawn from the
    ``train`` stream's child ``e`` (so resuming at any step replays the same order)."""
    per_epoch = math.ceil(n / bs)
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=_torch_generator(
        np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, epoch))))
    return perm[k * bs:(k + 1) * bs]


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    logits = model(x)  # (B, C) or (B, P, C)
    logits = logits.reshape(-1, logits.shape[-1])
    y = y.reshape(-1)
    loss = nn.functional.cross_entropy(logits, y, ignore_index=-100)
    keep = y != -100
    correct = int((logits.argmax(1)[keep] == y[keep]).sum())
    return loss, correct, int(keep.sum())


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int = 2048
             ) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the (non-ignored) targets."""
    model.eval()
    tot_loss, correct, count = 0.0, 0, 0
    for lo in range(0, len(x), bs):
        loss, c, k = _loss(model, x[lo:lo + bs], y[lo:lo + bs])
        tot_loss += float(loss) * k
        correct, count = correct + c, count + k
    model.train()
    return tot_loss / max(count, 1), correct / max(count, 1)


def train(p: Prepared, out: Path, progress: Progress | None = None) -> HookedModel:
    """Train (or resume) and write metrics.jsonl, checkpoints and model.pt."""
    cfg, d = p.cfg.optim, p.data
    model = _build(p)
    opt = _optimizer(cfg, model)
    x_tr, x_te = d.x_train.to(p.device), d.x_test.to(p.device)
    n = len(x_tr)
    total = total_steps(cfg, n)
    saves = set(checkpoint_steps(cfg, total))
    ckdir = out / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    resume, metrics_path = ckdir / "resume.pt", out / "metrics.jsonl"
    step, run_loss, run_correct, run_count = 0, 0.0, 0, 0
    if resume.is_file():
        state = torch.load(resume, map_location=p.device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        step, run_loss, run_correct, run_count = state["running"]
    lines = _read_metrics(metrics_path, max_step=step if resume.is_file() else -1)
    _atomic_text("".join(json.dumps(m) + "\n" for m in lines), metrics_path)

    def snapshot() -> dict[str, Any]:
        return {"model": model.state_dict(), "optim": opt.state_dict(), "step": step,
                "running": (step, run_loss, run_correct, run_count)}

    def log(entry: dict[str, Any]) -> None:
        with metrics_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    if step == 0:
        test_loss, test_acc = evaluate(model, x_te, d.y_test.to(p.device))
        log({"step": 0, "train_loss": None, "train_acc": None, "test_loss": test_loss,
             "test_acc": test_acc})
        if 0 in saves:
            _atomic_save(_weights(model, p, 0), ckdir / f"step_{0:07d}.pt")
    model.train()
    try:
        while step < total:
            rows = _batch_rows(p.seeds["train"], step, n, cfg.batch_size).to(p.device)
            xb, yb = d.batch(x_tr, rows, train=True, step=step, seed=p.seeds["train"])
            with autocast(cfg.amp, p.device):
                loss, c, k = _loss(model, xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            run_loss += float(loss.detach()) * k
            run_correct, run_count = run_correct + c, run_count + k
            if step % cfg.eval_every == 0 or step == total:
                test_loss, test_acc = evaluate(model, x_te, d.y_test.to(p.device))
                log({"step": step, "train_loss": run_loss / max(run_count, 1),
                     "train_acc": run_correct / max(run_count, 1), "test_loss": test_loss,
                     "test_acc": test_acc})
                run_loss, run_correct, run_count = 0.0, 0, 0
                _atomic_save(snapshot(), resume)
            if step in saves:
                _atomic_save(_weights(model, p, step), ckdir / f"step_{step:07d}.pt")
            if progress is not None:
                progress("train", step, total)
    except KeyboardInterrupt:
        _atomic_save(snapshot(), resume)
        raise
    _atomic_save(_weights(model, p, step), out / "model.pt")
    return model


def _weights(model: nn.Module, p: Prepared, step: int) -> dict[str, Any]:
    return {"state_dict": model.state_dict(), "step": step,
            "model": to_dict(p.cfg.model), "spec": dataclasses.asdict(p.spec),
            "n_targets": p.data.n_targets, "n_classes": p.data.n_classes}


def _read_metrics(path: Path, max_step: int) -> list[dict[str, Any]]:
    """Complete metric lines with ``step <= max_step`` (a torn last line is dropped)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry["step"] <= max_step:
            out.append(entry)
    return out


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    return _read_metrics(Path(run_dir) / "metrics.jsonl", max_step=2**62)


# ----------------------------------------------------------------------------- run

def run(config: TrainConfig, out_dir: str | Path, *, progress: Progress | None = None
        ) -> Path:
    """Train, probe, record layer metrics and plot into ``out_dir`` (skipping finished
    stages: a stage's output file is written atomically once complete); returns
    the heatmap path. Bad input raises ValueError before anything is trained."""
    from tmr import plots

    p = prepare(config, out_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_file = out / "config.json"
    if not cfg_file.is_file():
        _atomic_text(json.dumps(_config_record(p), indent=2, sort_keys=True), cfg_file)
    if (out / "model.pt").is_file():
        model = _build(p)
        model.load_state_dict(torch.load(out / "model.pt", map_location=p.device,
                                         weights_only=False)["state_dict"])
    else:
        model = train(p, out, progress)
    csv_path = out / "probe_scores.csv"
    if not csv_path.is_file():
        rows = probe_run(p, model, out, progress)
        write_table_atomic(rows, csv_path)
    ceiling = out / "posterior_ceiling.csv"
    if not ceiling.is_file():
        # the final step without reading the checkpoint: training always runs to the total
        final = total_steps(p.cfg.optim, len(p.data.x_train))
        rows = posterior_ceiling(p.data.probe_sample, p.data.probe_levels, step=final,
                                 seed=p.cfg.seed)
        if rows:
            write_table_atomic(rows, ceiling)
    record_metrics(p, model, out, progress)
    png = out / "layer_level.png"
    if not png.is_file():
        metric = "selectivity" if p.cfg.probe.control else "accuracy"
        plots.layer_level_heatmap(csv_path, png, metric=metric)
    return png


def _config_record(p: Prepared) -> dict[str, Any]:
    versions = io.versions()
    versions["torch"] = torch.__version__
    return {"config": to_dict(p.given), "resolved_model": to_dict(p.cfg.model),
            "seed": p.cfg.seed, "device": str(p.device), "versions": versions,
            "git_commit": _git_commit(), "data": p.data.describe(), "sites": p.sites,
            "input": dataclasses.asdict(p.spec), "n_targets": p.data.n_targets,
            "n_classes": p.data.n_classes}


def probe_run(p: Prepared, model: HookedModel, out: Path, progress: Progress | None = None
              ) -> list[dict[str, Any]]:
    """Probe rows at the final step (or at every saved checkpoint)."""
    steps: list[tuple[int, Path | None]] = []
    if p.cfg.probe.steps == "checkpoints":
        steps = [(int(f.stem.split("_")[1]), f)
                 for f in sorted((out / "checkpoints").glob("step_*.pt"))]
    final = int(torch.load(out / "model.pt", map_location="cpu", weights_only=False)["step"])
    if not steps or steps[-1][0] != final:
        steps.append((final, None))
    rows: list[dict[str, Any]] = []
    x, levels, xraw = p.data.probe_inputs()
    for k, (step, path) in enumerate(steps):
        if path is not None:
            model.load_state_dict(torch.load(path, map_location=p.device,
                                             weights_only=False)["state_dict"])
        acts = collect_activations(model, x, p.sites, p.cfg.probe.batch_size)
        cb = None if progress is None else (
            lambda done, total, k=k: progress("probe", k * total + done, len(steps) * total))
        rows += probe_grid(acts, levels, xraw, p.cfg.probe, step=step, seed=p.cfg.seed,
                           rng=p.seeds["probe"], progress=cb)
    return rows


def load_run(run_dir: str | Path, step: int | None = None
             ) -> tuple[HookedModel, TrainConfig, Path]:
    """The model of a run (final weights, or those saved at ``step``), its training
    config and the path of its data file."""
    run_dir = Path(run_dir)
    record = json.loads((run_dir / "config.json").read_text())
    cfg = from_dict(TrainConfig, record["config"])
    path = run_dir / "model.pt" if step is None else (
        run_dir / "checkpoints" / f"step_{step:07d}.pt")
    if not path.is_file():
        saved = sorted(f.stem for f in (run_dir / "checkpoints").glob("step_*.pt"))
        raise ValueError(f"{str(path)!r} does not exist; saved steps: {saved}")
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(from_dict(ModelConfig, state["model"]), InputSpec(**state["spec"]),
                        state["n_targets"], state["n_classes"])
    model.load_state_dict(state["state_dict"])
    return model, cfg, Path(cfg.data_path)


__all__ = ["ConfigError", "TrainConfig", "load_run", "load_train_config", "run"]
