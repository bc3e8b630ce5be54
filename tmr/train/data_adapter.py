"""From a data file to model inputs and task targets (the one generic input adapter).

Any generator's file works without change: the observed ``x`` (n, ...) is flattened
per sample; integer data become token ids (``-1`` padding becomes the id
``vocab``, masking uses ``vocab + 1``), real data stay real (images, point
clouds). Targets are a latent level (root by default) at every position, a
per-sample aux array (``task.kind = "aux"``, :func:`aux_target`), or the tokens
themselves for masked / next-token prediction. Ignored targets are -100.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from generators import HierarchicalSample
from tmr import io
from tmr.models import InputSpec, input_spec
from tmr.probe_targets import AUX_PREFIX, aux_level

IGNORE = -100


@dataclasses.dataclass
class TaskData:
    """Inputs and targets of both splits, plus what probes need."""

    path: str
    task: Any
    spec: InputSpec
    data_vocab: int
    x_train: torch.Tensor  # (n_train, T) int64 ids or float32
    y_train: torch.Tensor  # (n_train,) or (n_train, P) int64, IGNORE where not scored
    x_test: torch.Tensor  # (n_test, T)
    y_test: torch.Tensor  # (n_test,) or (n_test, P)
    n_targets: int
    n_classes: int
    tuple_size: int | None
    probe_sample: HierarchicalSample
    probe_levels: tuple[str, ...]
    attrs: dict[str, Any]
    probe_aux: tuple[str, ...] = ()
    probe_aux_bins: int = 4

    def batch(self, x: torch.Tensor, rows: torch.Tensor, *, train: bool, step: int,
              seed: np.random.SeedSequence) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of a training batch (masked-token masks are drawn from
        the child ``("mask", step)`` of ``seed``)."""
        xb, yb = x[rows], self.y_train.to(x.device)[rows]
        if self.task.kind == "masked":
            g = torch.Generator().manual_seed(int(np.random.SeedSequence(
                seed.entropy, spawn_key=(*seed.spawn_key, 0x3A5C, step)
            ).generate_state(1, np.uint64)[0]) & (2**63 - 1))
            xb, yb = mask_tokens(xb.cpu(), self.task.mask_prob, self.data_vocab, g)
            xb, yb = xb.to(x.device), yb.to(x.device)
        return xb, yb

    def probe_inputs(self) -> tuple[torch.Tensor, dict[str, np.ndarray], np.ndarray]:
        """Model inputs (n, T), levels {name: (n, ...)} as stored (the probes turn them
        into targets, :mod:`tmr.probe_targets`) and raw x of the probe sample."""
        s = self.probe_sample
        levels = {name: s.level(name) for name in self.probe_levels}
        for name in self.probe_aux:  # per-sample ground truth, (n, P) int targets
            levels[AUX_PREFIX + name] = aux_level(s.aux[name], self.probe_aux_bins)
        return adapt_x(s.x, self.data_vocab), levels, s.x

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "generator": self.attrs.get("generator"),
                "seed": self.attrs.get("seed"), "n_samples": self.attrs.get("n_samples"),
                "created": self.attrs.get("created"), "vocab": self.data_vocab,
                "n_train": len(self.x_train), "n_test": len(self.x_test),
                "n_probe": len(self.probe_sample)}


def lattice_dim(world: Any) -> int:
    """The number of lattice axes of a sample when the data's world declares a lattice
    (percolation: ``world.lattice`` and ``world.dim``), else 0 (images, sequences,
    point clouds, whose ``dim`` if any is an embedding dimension)."""
    dim = getattr(world, "dim", None)
    if getattr(world, "lattice", None) is None or not isinstance(dim, int | np.integer):
        return 0
    return int(dim)


def adapt_x(x: np.ndarray, data_vocab: int) -> torch.Tensor:
    """``x`` (n, ...) -> (n, T): int64 ids with -1 mapped to the pad id, or float32."""
    flat = x.reshape(len(x), -1)
    if flat.dtype.kind in "iub":
        ids = flat.astype(np.int64)
        ids[ids < 0] = data_vocab
        return torch.from_numpy(ids)
    return torch.from_numpy(flat.astype(np.float32))


def mask_tokens(x: torch.Tensor, p: float, data_vocab: int, g: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each non-pad token by the mask id with probability ``p``; targets are
    the original tokens there and IGNORE elsewhere (BERT-style, without the 80/10/10)."""
    real = x < data_vocab
    mask = (torch.rand(x.shape, generator=g) < p) & real
    y = torch.where(mask, x, torch.full_like(x, IGNORE))
    return torch.where(mask, torch.full_like(x, data_vocab + 1), x), y


def aux_target(s: HierarchicalSample, name: str, index: tuple[int | str, ...] = ()
               ) -> np.ndarray:
    """``(n,)`` int64 class labels from ``s.aux[name]`` (n, ...): each entry of ``index``
    selects along the next trailing axis, an int the same entry for every sample, a
    string the entry given per sample by the (n,) integer aux array of that name
    (``a[i, aux[str][i]]``). The result must be one integer or boolean per sample;
    negative values are ignored targets."""
    if name not in s.aux:
        raise ValueError(f"task.target={name!r} is not an aux array of the data; its aux "
                         f"arrays are {sorted(s.aux)}")
    a = np.asarray(s.aux[name])  # (n, ...)
    rows = np.arange(len(s))  # (n,)
    for k, ix in enumerate(index):
        if a.ndim < 2:
            raise ValueError(f"task.index={list(index)} has more entries than aux {name!r} "
                             f"has trailing axes ({np.asarray(s.aux[name]).ndim - 1})")
        if isinstance(ix, str):
            sel = np.asarray(s.aux.get(ix, ()))
            if sel.shape != (len(s),) or sel.dtype.kind not in "iu":
                raise ValueError(f"task.index[{k}]={ix!r} must name an (n,) integer aux "
                                 f"array; the aux arrays are {sorted(s.aux)}")
            a = a[rows, sel.astype(np.int64)]
        else:
            a = a[:, ix]
    if a.shape != (len(s),):
        raise ValueError(f"aux {name!r} indexed by {list(index)} has shape {a.shape}, not one "
                         f"value per sample; add task.index entries for its trailing axes")
    if a.dtype.kind not in "iub":
        raise ValueError(f"aux {name!r} holds {a.dtype} values; task.kind='aux' needs "
                         "integer or boolean classes")
    return a.astype(np.int64)


def _targets(s: HierarchicalSample, x: torch.Tensor, task: Any, data_vocab: int
             ) -> torch.Tensor:
    if task.kind == "aux":
        y = torch.from_numpy(aux_target(s, task.target, task.index))  # (n,)
        y[y < 0] = IGNORE
        return y
    if task.kind in ("root", "level"):
        lv = s.level(s.level_names[0] if task.kind == "root" else task.level)
        y = torch.from_numpy(lv.reshape(len(s), -1).astype(np.int64))  # (n, P)
        y[y < 0] = IGNORE
        return y[:, 0] if y.shape[1] == 1 else y
    if task.kind == "next":
        y = torch.full_like(x, IGNORE)  # (n, T)
        y[:, :-1] = x[:, 1:]
        y[y >= data_vocab] = IGNORE
        return y
    return torch.zeros_like(x)  # masked: targets are drawn per batch


def prepare_task(path: str, task: Any, check: Any, probe: Any,
                 split_seed: np.random.SeedSequence) -> TaskData:
    """Read both splits of ``path``, check them against the config's expectations
    (``check``: generator, vocab_size, levels; task and probe level names) and build
    inputs and targets. Raises ValueError naming the mismatch."""
    train, attrs = io.read(path, "train")
    test, _ = io.read(path, "test")
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"{path!r} has an empty train or test split ({len(train)} / "
                         f"{len(test)} samples); regenerate it with test_fraction in (0, 1)")
    names = train.level_names
    gen = attrs.get("generator")
    if check.generator is not None and gen != check.generator:
        raise ValueError(f"{path!r} was made by generator {gen!r}, the config expects "
                         f"data.generator={check.generator!r}")
    wanted = list(check.levels) + list(probe.levels)
    if task.kind == "level":
        wanted.append(task.level)
    for name in wanted:
        if name not in names:
            raise ValueError(f"level {name!r} is not in {path!r}; its levels are {list(names)}")
    is_int = train.x.dtype.kind in "iub"
    data_vocab = 0
    if is_int:
        # a generator may mark tokens beyond its world's alphabet (planted RHM modes)
        meta = attrs.get("meta")
        world_vocab = (meta.get("input_vocab_size") if isinstance(meta, dict) else None) \
            or getattr(train.world, "vocab_size", None)
        observed = int(max(train.x.max(), test.x.max())) + 1
        data_vocab = int(world_vocab) if world_vocab is not None else observed
        if observed > data_vocab:
            raise ValueError(f"{path!r} has token ids up to {observed - 1}, beyond its "
                             f"vocab_size {data_vocab}")
    if check.vocab_size is not None and data_vocab != check.vocab_size:
        raise ValueError(f"{path!r} has vocabulary size {data_vocab}, the config expects "
                         f"data.vocab_size={check.vocab_size}; use a matching data file or "
                         "change data.vocab_size")
    if task.kind in ("masked", "next") and not is_int:
        raise ValueError(f"task.kind={task.kind!r} needs token data; {path!r} holds real x")
    spec = input_spec(train.x.shape, is_int, data_vocab, lattice_dim(train.world))
    x_tr, x_te = adapt_x(train.x, data_vocab), adapt_x(test.x, data_vocab)
    y_tr = _targets(train, x_tr, task, data_vocab)
    y_te = _targets(test, x_te, task, data_vocab)
    if task.kind == "masked":
        g = torch.Generator().manual_seed(int(split_seed.generate_state(1, np.uint64)[0])
                                          & (2**63 - 1))
        x_te, y_te = mask_tokens(x_te, task.mask_prob, data_vocab, g)
        n_classes = data_vocab
    elif task.kind == "next":
        n_classes = data_vocab
    else:
        n_classes = int(max(y_tr.max(), y_te.max())) + 1
    n_targets = 1 if y_tr.dim() == 1 else y_tr.shape[1]
    src = {"train": train, "test": test}.get(probe.split)
    if src is None:
        raise ValueError(f"probe.split={probe.split!r} must be 'train' or 'test'")
    for name in probe.aux:
        arr = src.aux.get(name)
        if arr is None or np.asarray(arr).dtype.kind not in "iubf":
            numeric = sorted(k for k, v in src.aux.items() if np.asarray(v).dtype.kind in "iubf")
            raise ValueError(f"probe.aux names {name!r}, which {path!r} does not hold as a "
                             f"numeric per-sample array; its aux arrays are {numeric}")
    rng = np.random.default_rng(split_seed)
    if len(src) > probe.max_samples:
        src = src[np.sort(rng.choice(len(src), probe.max_samples, replace=False))]
    tuple_size = getattr(train.world, "tuple_size", None)
    return TaskData(path=str(path), task=task, spec=spec, data_vocab=data_vocab,
                    x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
                    n_targets=n_targets, n_classes=n_classes,
                    tuple_size=None if tuple_size is None else int(tuple_size),
                    probe_sample=src, probe_levels=tuple(probe.levels) or names, attrs=attrs,
                    probe_aux=tuple(probe.aux), probe_aux_bins=probe.aux_bins)
