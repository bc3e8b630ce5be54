"""Layer metrics over training: the ``[metrics]`` table of a training config.

After training and probing, :func:`record_metrics` loads the weights saved at each
chosen step (``checkpoints/step_NNNNNNN.pt``, log-spaced by ``optim.log_checkpoints``,
plus the final ``model.pt``), collects the activations of the probe sites on the
probe sample (the held-out split, as the probes use) and writes
:func:`tmr.metrics.table.layer_metric_rows` for every step into
``layer_metrics.csv`` (the columns of ``probe_scores.csv``). The file is written
atomically once every step is done, so its existence means it is complete and a
rerun of the same config skips this stage. ``tmr report RUN_DIR`` draws from it.

The formulas are those of :mod:`tmr.metrics` (background.md §3): effective rank
exp(H(σ/Σσ)), participation ratio (Σλ)²/Σλ², NC1 = Tr(Σ_W Σ_B⁺)/C,
RNC1 = Tr Σ_W / Tr Σ_B, He & Su D = Tr(SS_w SS_b⁺), binned and k-NN I(H;Y),
I(H;X) for discrete inputs, TwoNN, CKA against one-hot levels, RSA against the
latent tree distance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from tmr.metrics.table import DEFAULT_METRICS, layer_metric_rows, write_table_atomic
from tmr.probes import collect_activations

if TYPE_CHECKING:
    from tmr.models import HookedModel
    from tmr.train.data_adapter import TaskData

__all__ = ["CHEAP_METRICS", "MetricsConfig", "metric_steps", "record_metrics"]

#: on by default: each costs about one covariance pass (readme_metrics benchmark table:
#: 40-150 ms per call at n = 10,000, d = 256), so the demo stays fast. The k-NN
#: estimators (knn_mi, twonn: O(n^2 d)), cka_onehot and rsa_tree are opt-in.
CHEAP_METRICS = ("effective_rank", "participation_ratio", "mi_input", "binned_mi", "nc1",
                 "rnc1", "separation")
TABLE = "layer_metrics.csv"
Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    """The ``[metrics]`` table: which layer metrics (empty list = none), at which steps
    (``"checkpoints"``: every saved checkpoint and the final step; ``"final"``), on at
    most ``max_samples`` rows of the probe sample, the k-NN estimators (knn_mi, twonn)
    on at most ``knn_samples`` of those, ``n_bins`` for binned MI, and the level
    ``position`` used as label."""

    metrics: tuple[str, ...] = CHEAP_METRICS
    steps: str = "checkpoints"
    max_samples: int = 2048
    knn_samples: int = 1000
    n_bins: int = 30
    position: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.metrics) - set(DEFAULT_METRICS))
        if unknown:
            raise ValueError(f"metrics.metrics has unknown names {unknown}; "
                             f"choose from {list(DEFAULT_METRICS)}")
        if self.steps not in ("final", "checkpoints"):
            raise ValueError(f"metrics.steps={self.steps!r} must be 'final' or 'checkpoints'")
        if self.max_samples < 8 or self.knn_samples < 8:
            raise ValueError("metrics.max_samples and metrics.knn_samples must be at least 8")
        if self.n_bins < 2:
            raise ValueError(f"metrics.n_bins={self.n_bins} must be at least 2")
        if self.position < 0:
            raise ValueError(f"metrics.position={self.position} must be non-negative")


def metric_steps(out: Path, steps: str) -> list[tuple[int, Path]]:
    """``(step, weights file)`` in step order: saved checkpoints (if ``steps ==
    "checkpoints"``) and the final ``model.pt`` (its step replaces an equal checkpoint)."""
    final = int(torch.load(out / "model.pt", map_location="cpu", weights_only=False)["step"])
    chosen: dict[int, Path] = {}
    if steps == "checkpoints":
        for f in sorted((out / "checkpoints").glob("step_*.pt")):
            chosen[int(f.stem.split("_")[1])] = f
    chosen[final] = out / "model.pt"
    return sorted(chosen.items())


class PreparedRun(Protocol):
    """What :func:`record_metrics` reads of a prepared run (:class:`tmr.train.Prepared`
    satisfies it); a protocol here keeps imports one way, loop -> metrics."""

    @property
    def cfg(self) -> Any: ...
    @property
    def device(self) -> torch.device: ...
    @property
    def data(self) -> TaskData: ...
    @property
    def sites(self) -> list[str]: ...


def record_metrics(p: PreparedRun, model: HookedModel, out: Path,
                   progress: Progress | None = None) -> Path | None:
    """Write ``layer_metrics.csv`` (skipped when it exists or no metric is chosen)."""
    cfg: MetricsConfig = p.cfg.metrics
    path = out / TABLE
    if not cfg.metrics or path.is_file():
        return path if path.is_file() else None
    sample = p.data.probe_sample
    n = len(sample.x)
    keep = np.arange(n)
    if n > cfg.max_samples:  # a fixed subset, the same rows at every step
        keep = np.sort(np.random.default_rng(cfg.position).choice(n, cfg.max_samples,
                                                                  replace=False))
    sub = dataclasses.replace(sample, x=sample.x[keep],
                              levels=tuple(np.asarray(lv)[keep] for lv in sample.levels),
                              aux={k: np.asarray(v)[keep] for k, v in sample.aux.items()})
    x, _, _ = p.data.probe_inputs()
    x = x[torch.from_numpy(keep)]  # (n_kept, T)
    steps = metric_steps(out, cfg.steps)
    rows: list[dict[str, Any]] = []
    for k, (step, weights) in enumerate(steps):
        state = torch.load(weights, map_location=p.device, weights_only=False)
        model.load_state_dict(state["state_dict"])
        acts = collect_activations(model, x, p.sites, p.cfg.probe.batch_size)  # {site: (n, d)}
        rows += layer_metric_rows(acts, sub, step=step, seed=p.cfg.seed, metrics=cfg.metrics,
                                  position=cfg.position, knn_samples=cfg.knn_samples,
                                  n_bins=cfg.n_bins)
        if progress is not None:
            progress("metrics", k + 1, len(steps))
    return write_table_atomic(rows, path)
