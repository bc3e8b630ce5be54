"""Linear probes of every site against every latent level, with control tasks.

For a layer ``H`` (n × d, float64) and a level ``y`` (n × P symbols) we fit, for
each position ``p``, a ridge classifier on one-hot targets (closed form, in torch)

    W_λ = argmin ‖H̃W − Ỹ‖² + λ n ‖W‖²  =  V diag(σ/(σ² + λn)) Uᵀ Ỹ,

with ``H̃ = (H − mean)/scale = U diag(σ) Vᵀ`` (one eigendecomposition of the Gram
matrix serves every λ, every level, every position and every control target) and
``Ỹ`` the centred one-hot labels; the prediction is the argmax of ``H̃W + ȳ``.
``scale`` is the root mean variance of the features, a scalar, so the probe is
invariant to orthogonal rotations of ``H``.
λ is chosen per target by inner K-fold cross-validation on balanced accuracy.

Scores (background.md §3, "Linear probe"):
- *balanced accuracy* on held-out samples: the mean over classes present of the
  per-class recall (chance = 1 / n_classes);
- *control accuracy* (Hewitt & Liang 2019, "Designing and interpreting probes with
  control tasks"): each distinct input type (the observed row ``x``) gets a fixed
  label drawn from the empirical marginal of ``y[:, p]``; a probe scoring well on it
  memorises surface forms;
- *selectivity* = accuracy − control accuracy.
Levels with several positions are averaged over positions (``position = "mean"``;
per-position rows are kept); positions whose label is constant over the probe sample
are left out of the mean (they score 1 trivially) unless every position is constant.
Two held-out splits: ``test`` (uniformly random) and ``group`` (whole groups of samples
sharing the parent level's configuration are held out, so memorising surface forms
cannot score; not defined for the root).

Levels of any shape and dtype are turned into targets by
:func:`tmr.probe_targets.probe_levels` (per-pixel maps pooled to one label per
image, by default the majority valid label). Negative labels (-1: empty /
ambiguous) are dropped from that target's fit and score; ``n`` is the number of
scored held-out rows.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from tmr.hooks import run_with_cache
from tmr.probe_targets import AUX_PREFIX, POOLS, probe_levels

#: columns of probe_scores.csv, in order
COLUMNS = ("step", "site", "level", "position", "metric", "split", "value", "n", "d",
           "n_classes", "seed")
MEAN_POSITION = "mean"


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
    """The ``[probe]`` table: which sites (glob patterns over hook names) and levels
    (empty = all), how many samples of which file split, the ridge grid, folds."""

    sites: tuple[str, ...] = ("embed", "layers.*.post", "head")
    levels: tuple[str, ...] = ()
    split: str = "test"
    max_samples: int = 4096
    test_fraction: float = 0.25
    inner_folds: int = 3
    ridge_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
    control: bool = True
    group_split: bool = True
    steps: str = "final"
    batch_size: int = 1024
    pool: str = "majority"
    aux: tuple[str, ...] = ()
    aux_bins: int = 4

    def __post_init__(self) -> None:
        if self.aux_bins < 2:
            raise ValueError(f"probe.aux_bins={self.aux_bins} must be at least 2")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"probe.test_fraction={self.test_fraction} must be in (0, 1)")
        if self.inner_folds < 2:
            raise ValueError(f"probe.inner_folds={self.inner_folds} must be at least 2")
        if not self.ridge_grid or min(self.ridge_grid) <= 0:
            raise ValueError("probe.ridge_grid must be a non-empty list of positive numbers")
        if self.steps not in ("final", "checkpoints"):
            raise ValueError(f"probe.steps={self.steps!r} must be 'final' or 'checkpoints'")
        if self.pool not in POOLS:
            raise ValueError(f"probe.pool={self.pool!r} must be one of {POOLS}")
        if self.max_samples < 8:
            raise ValueError(f"probe.max_samples={self.max_samples} must be at least 8")


def match_sites(patterns: Sequence[str], sites: Sequence[str]) -> list[str]:
    """Sites matching any glob pattern, in forward order; a pattern matching nothing
    raises a ValueError listing the model's sites."""
    for p in patterns:
        if not any(fnmatch.fnmatchcase(s, p) for s in sites):
            raise ValueError(f"probe site {p!r} matches no site of the model; its sites are "
                             f"{list(sites)}")
    return [s for s in sites if any(fnmatch.fnmatchcase(s, p) for p in patterns)]


@torch.no_grad()
def collect_activations(model: torch.nn.Module, x: torch.Tensor | np.ndarray,
                        sites: Sequence[str], batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Activations at ``sites`` for inputs ``x`` (n, ...), flattened per sample:
    ``{site: (n, d) float32}``, computed in eval mode in batches."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    xt = torch.as_tensor(x)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in sites}
    try:
        for lo in range(0, len(xt), batch_size):
            _, cache = run_with_cache(model, xt[lo:lo + batch_size].to(device), sites)
            for s in sites:
                parts[s].append(cache[s].reshape(len(cache[s]), -1).float().cpu().numpy())
    finally:
        model.train(was_training)
    return {s: np.concatenate(p) for s, p in parts.items()}


# ----------------------------------------------------------------------------- scores

def balanced_accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """Mean over the classes present in ``y_true`` of the recall (chance 1/C); rows
    with a negative (invalid) true label are ignored (NaN when none is left)."""
    keep = y_true >= 0
    y_true, y_pred = y_true[keep], y_pred[keep]
    if len(y_true) == 0:
        return float("nan")
    c = int(max(y_true.max(), y_pred.max())) + 1
    total = torch.bincount(y_true, minlength=c)
    hit = torch.bincount(y_true[y_pred == y_true], minlength=c)
    present = total > 0
    return float((hit[present].double() / total[present].double()).mean())


def posterior_ceiling(sample: Any, levels: Sequence[str], *, step: int, seed: int
                      ) -> list[dict[str, Any]]:
    """What the input itself determines about each level, for PCFG samples drawn with
    ``soft_levels`` (``aux["posterior_depth{d}"]``, :mod:`generators.pcfg.soft`).

    Rows (the :data:`COLUMNS`, site ``"posterior_map"``, split ``"all"``) per level
    ``depth{d}`` and position and averaged over positions: ``accuracy``, the balanced
    accuracy of the MAP labeller ``argmax_A P(ancestor_d(t) = A | x)`` against the
    generating tree (the Bayes-optimal labeller, with no fitting); and
    ``mean_max_posterior``, the mean over tokens of ``max_A P(...)``, its expected
    plain accuracy. A probe cannot beat them on average: they are the ceiling lines
    for ambiguous grammars. Empty when the sample has no posteriors."""
    from generators.pcfg import soft as pcfg_soft

    rows: list[dict[str, Any]] = []
    for name in levels:
        key = f"posterior_{name}"
        if key not in sample.aux:
            continue
        d = sample.level_names.index(name)
        soft = sample.aux[key]                              # (n, T, K_d)
        lab = pcfg_soft.map_labels_at(sample.world, d, soft)  # (n, T)
        truth = np.asarray(sample.level(name))              # (n, T)
        acc, top, ks = [], [], []
        base = {"step": step, "site": "posterior_map", "level": name, "split": "all",
                "d": 0, "seed": seed}
        for pos in range(truth.shape[1]):
            valid = truth[:, pos] >= 0
            if not valid.any():
                continue
            y = torch.as_tensor(truth[valid, pos].astype(np.int64))
            a = balanced_accuracy(y, torch.as_tensor(lab[valid, pos].astype(np.int64)))
            m = float(soft[valid, pos].max(axis=-1).mean())
            k = int(torch.unique(y).numel())
            n = int(valid.sum())
            acc.append(a)
            top.append(m)
            ks.append(k)
            rows += [{**base, "position": pos, "metric": "accuracy", "value": a, "n": n,
                      "n_classes": k},
                     {**base, "position": pos, "metric": "mean_max_posterior", "value": m,
                      "n": n, "n_classes": k}]
        if acc:  # the mean leaves out constant positions, as the probes' does
            keep = [i for i, k in enumerate(ks) if k > 1] or list(range(len(ks)))
            acc, top = [acc[i] for i in keep], [top[i] for i in keep]
            n_all = int((truth >= 0).sum())
            rows += [{**base, "position": MEAN_POSITION, "metric": metric,
                      "value": float(np.mean(v)), "n": n_all, "n_classes": ""}
                     for metric, v in (("accuracy", acc), ("mean_max_posterior", top))]
    return rows


def type_ids(x: np.ndarray) -> np.ndarray:
    """``(n,)`` id of each distinct row of ``x`` (n, ...): the input *type*."""
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    return np.unique(flat, axis=0, return_inverse=True)[1].reshape(-1)


def control_labels(y: np.ndarray, types: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Control task (Hewitt & Liang 2019): ``(n, P)`` labels where every input type
    gets, per position, one label drawn from the empirical marginal of the valid
    (``>= 0``) labels of ``y[:, p]``; rows invalid in ``y`` stay invalid (-1)."""
    n_types = int(types.max()) + 1
    out = np.empty_like(y)  # (n, P)
    for p in range(y.shape[1]):
        valid = y[:, p] >= 0  # (n,)
        pool = y[valid, p] if valid.any() else y[:, p]
        table = rng.choice(pool, size=n_types, replace=True)  # (n_types,) from marginal
        out[:, p] = np.where(valid, table[types], y[:, p])
    return out


def random_split(n: int, test_fraction: float, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    n_test = max(round(test_fraction * n), 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def group_split(groups: np.ndarray, test_fraction: float, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """Hold out whole groups until ``test_fraction`` of the samples is reached
    (None when there are fewer than two groups)."""
    uniq, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(uniq) < 2:
        return None
    order = rng.permutation(len(uniq))
    cum = np.cumsum(counts[order])
    k = int(np.searchsorted(cum, test_fraction * len(groups))) + 1
    k = min(max(k, 1), len(uniq) - 1)
    test_mask = np.isin(inv, order[:k])
    return np.flatnonzero(~test_mask), np.flatnonzero(test_mask)


@dataclasses.dataclass
class _Target:
    level: str
    position: int
    control: bool
    y: torch.Tensor  # (n,) int64 labels


def _ridge_predictions(h_tr: torch.Tensor, y_tr: torch.Tensor, h_ev: torch.Tensor,
                       grid: Sequence[float]) -> list[torch.Tensor]:
    """Ridge predictions ``(n_eval, K)`` for one-hot targets ``y_tr`` (n_train, K), one
    tensor per λ in ``grid``, from one eigendecomposition (module docstring formula):
    with ``H̃ᵀH̃ = V diag(e) Vᵀ`` (e = σ²), ``W_λ = V diag(1/(e + λn)) Vᵀ H̃ᵀỸ``; when
    d > n the dual ``H̃H̃ᵀ = U diag(e) Uᵀ`` gives ``W_λ = H̃ᵀ U diag(1/(e + λn)) UᵀỸ``."""
    mu = h_tr.mean(0)
    scale = torch.sqrt(((h_tr - mu) ** 2).sum(1).mean() / h_tr.shape[1]).clamp_min(1e-12)
    a = (h_tr - mu) / scale  # (n, d)
    ev = (h_ev - mu) / scale  # (n_eval, d)
    y_mean = y_tr.mean(0)
    yc = y_tr - y_mean  # (n, K)
    n, d = a.shape
    if d <= n:
        e, v = torch.linalg.eigh(a.T @ a)  # (d,), (d, d)
        left, right = ev @ v, v.T @ (a.T @ yc)  # (n_eval, d), (d, K)
    else:
        e, u = torch.linalg.eigh(a @ a.T)  # (n,), (n, n)
        left, right = (ev @ a.T) @ u, u.T @ yc  # (n_eval, n), (n, K)
    e = e.clamp_min(0.0)
    return [left @ (right / (e + lam * n)[:, None]) + y_mean for lam in grid]


def _onehots(targets: Sequence[_Target], rows: torch.Tensor
             ) -> tuple[torch.Tensor, list[tuple[int, torch.Tensor]]]:
    """Stacked one-hot matrix over the classes seen in ``rows`` and, per target, its
    column offset and class values."""
    blocks, meta, off = [], [], 0
    for t in targets:
        classes = torch.unique(t.y[rows])
        blocks.append((t.y[rows, None] == classes[None, :]).double())
        meta.append((off, classes))
        off += len(classes)
    return torch.cat(blocks, 1), meta


def _scores(preds: torch.Tensor, meta: list[tuple[int, torch.Tensor]],
            targets: Sequence[_Target], rows: torch.Tensor) -> list[float]:
    out = []
    for t, (off, classes) in zip(targets, meta, strict=True):
        guess = classes[preds[:, off:off + len(classes)].contiguous().argmax(1)]
        out.append(balanced_accuracy(t.y[rows], guess))
    return out


def fit_and_score(h: torch.Tensor, targets: Sequence[_Target], train: np.ndarray,
                  test: np.ndarray, grid: Sequence[float], folds: int,
                  rng: np.random.Generator) -> tuple[list[float], list[float]]:
    """Held-out balanced accuracy of a ridge probe per target (λ by inner CV on
    ``train``) and the chosen λ per target."""
    tr = torch.as_tensor(train)
    cv = np.zeros((len(grid), len(targets)))  # (n_lambda, n_targets) summed CV accuracy
    fold_of = rng.permutation(len(train)) % folds
    for k in range(folds):
        fit, val = tr[torch.as_tensor(fold_of != k)], tr[torch.as_tensor(fold_of == k)]
        y_fit, meta = _onehots(targets, fit)
        for j, pred in enumerate(_ridge_predictions(h[fit], y_fit, h[val], grid)):
            cv[j] += _scores(pred, meta, targets, val)
    # ties go to the strongest regularisation (the narrowest probe)
    best = len(grid) - 1 - np.argmax(cv[::-1], axis=0)  # (n_targets,)
    te = torch.as_tensor(test)
    y_tr, meta = _onehots(targets, tr)
    preds = _ridge_predictions(h[tr], y_tr, h[te], grid)
    acc = []
    for i, t in enumerate(targets):
        acc.append(_scores(preds[best[i]], [meta[i]], [t], te)[0])
    return acc, [float(grid[b]) for b in best]


def probe_grid(acts: Mapping[str, np.ndarray], levels: Mapping[str, np.ndarray],
               x: np.ndarray, cfg: ProbeConfig, *, step: int, seed: int,
               rng: Any, progress: Callable[[int, int], None] | None = None
               ) -> list[dict[str, Any]]:
    """Score every site in ``acts`` ({site: (n, d)}) against every level in
    ``levels`` ({name: (n, P) ints}, root first) on inputs ``x`` (n, ...).

    Returns tidy rows with the :data:`COLUMNS`: metrics ``accuracy``,
    ``control_accuracy``, ``selectivity`` and ``ridge_lambda`` on splits ``test`` and
    ``group``, per position and averaged (``position = "mean"``).
    """
    gen = np.random.default_rng(rng)
    levels = probe_levels(levels, cfg.pool)  # {name: (n, P) int64, -1 invalid}
    names = list(levels)
    n = len(x)
    types = type_ids(x)
    targets: list[_Target] = []
    for name in names:
        y = levels[name].reshape(n, -1)  # (n, P)
        ctrl = control_labels(y, types, gen) if cfg.control else None
        for p in range(y.shape[1]):
            targets.append(_Target(name, p, False, torch.as_tensor(y[:, p].astype(np.int64))))
            if ctrl is not None:
                targets.append(_Target(name, p, True,
                                       torch.as_tensor(ctrl[:, p].astype(np.int64))))
    splits: list[tuple[str, list[str], tuple[np.ndarray, np.ndarray]]] = [
        ("test", names, random_split(n, cfg.test_fraction, gen))]
    if cfg.group_split:  # along the hierarchy only (aux.* targets have no parent level)
        tree = [m for m in names if not m.startswith(AUX_PREFIX)]
        for parent, name in itertools.pairwise(tree):
            gs = group_split(type_ids(levels[parent]), cfg.test_fraction, gen)
            if gs is not None:
                splits.append(("group", [name], gs))
    rows: list[dict[str, Any]] = []
    total = len(acts) * len(splits)
    done = 0
    for site, a in acts.items():
        h = torch.as_tensor(a, dtype=torch.float64)  # (n, d)
        for split, split_levels, (train, test) in splits:
            chosen = [t for t in targets if t.level in split_levels]
            chosen, acc, lams, ns = _fit_valid(h, chosen, train, test, cfg, gen)
            rows += _rows(chosen, acc, lams, ns, site=site, split=split,
                          d=h.shape[1], step=step, seed=seed)
            done += 1
            if progress is not None:
                progress(done, total)
    return rows


def _fit_valid(h: torch.Tensor, targets: Sequence[_Target], train: np.ndarray,
               test: np.ndarray, cfg: ProbeConfig, gen: np.random.Generator
               ) -> tuple[list[_Target], list[float], list[float], list[int]]:
    """:func:`fit_and_score` on the rows where each target is valid (``>= 0``):
    targets sharing a validity mask share one fit. Targets with fewer than
    ``2 * inner_folds`` valid training rows or no valid held-out row are dropped.
    Returns the scored targets, accuracies, λs and held-out row counts."""
    groups: dict[bytes, list[_Target]] = {}
    masks: dict[bytes, np.ndarray] = {}
    for t in targets:
        valid = (t.y >= 0).numpy()  # (n,)
        key = np.packbits(valid).tobytes()
        groups.setdefault(key, []).append(t)
        masks[key] = valid
    out_t: list[_Target] = []
    acc: list[float] = []
    lams: list[float] = []
    ns: list[int] = []
    for key, group in groups.items():
        tr, te = train[masks[key][train]], test[masks[key][test]]
        if len(tr) < 2 * cfg.inner_folds or len(te) == 0:
            continue
        a, lam = fit_and_score(h, group, tr, te, cfg.ridge_grid, cfg.inner_folds, gen)
        out_t += group
        acc += a
        lams += lam
        ns += [len(te)] * len(group)
    return out_t, acc, lams, ns


def _rows(targets: Sequence[_Target], acc: Sequence[float], lams: Sequence[float],
          ns: Sequence[int], *, site: str, split: str, d: int, step: int, seed: int
          ) -> list[dict[str, Any]]:
    real: dict[tuple[str, int], tuple[float, float, int, int]] = {}
    ctrl: dict[tuple[str, int], float] = {}
    for t, a, lam, n in zip(targets, acc, lams, ns, strict=True):
        if t.control:
            ctrl[(t.level, t.position)] = a
        else:
            n_classes = int(torch.unique(t.y[t.y >= 0]).numel())
            real[(t.level, t.position)] = (a, lam, n_classes, n)
    base = {"step": step, "site": site, "split": split, "d": d, "seed": seed}
    rows: list[dict[str, Any]] = []
    by_level: dict[str, list[dict[str, float]]] = {}
    for (level, pos), (a, lam, n_classes, n) in real.items():
        vals = {"accuracy": a, "ridge_lambda": lam}
        if (level, pos) in ctrl:
            vals["control_accuracy"] = ctrl[(level, pos)]
            vals["selectivity"] = a - ctrl[(level, pos)]
        by_level.setdefault(level, []).append({**vals, "n_classes": n_classes, "n": n})
        for metric, v in vals.items():
            rows.append({**base, "level": level, "position": pos, "metric": metric,
                         "value": v, "n_classes": n_classes, "n": n})
    for level, items in by_level.items():
        # positions whose label is constant score 1 trivially: left out of the mean
        # unless every position is constant (e.g. a root that is always the start symbol)
        items = [i for i in items if i["n_classes"] > 1] or items
        n_classes = max(int(i["n_classes"]) for i in items)
        n_min = min(int(i["n"]) for i in items)  # the smallest scored position's count
        for metric in ("accuracy", "control_accuracy", "selectivity"):
            if metric in items[0]:
                rows.append({**base, "level": level, "position": MEAN_POSITION,
                             "metric": metric, "value": float(np.mean([i[metric] for i in items])),
                             "n_classes": n_classes, "n": n_min})
    return rows
