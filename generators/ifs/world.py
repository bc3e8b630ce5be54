"""Shared types of the IFS family: :class:`World` and the argument checks.

The lowest module of :mod:`generators.ifs`: the tables, kernels, render and the family
module import it, and it imports none of them, so imports run one way.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from generators.base import min_uint_dtype as _min_uint_dtype
from generators.ifs import maps as maps_

#: addresses are stored as uint8 digits; deeper than this adds nothing below 1e-5 px
MAX_DEPTH = 64
#: automatic depth is capped here (maps with σ_max near 1 would need hundreds)
MAX_AUTO_DEPTH = 32


@dataclasses.dataclass(frozen=True, eq=False)
class World:
    """Fixed systems: ``linear`` (S, I, K, d, d), ``offset`` (S, I, K, d), ``probs``
    (S, I, K) for ``S = n_systems`` classes of ``I = n_instances`` systems, and
    ``box`` (S, I, 2, d): a square (lo, hi) around each attractor, used to rasterise."""

    kind: str
    dim: int
    n_maps: int
    n_systems: int
    n_instances: int
    linear: np.ndarray
    offset: np.ndarray
    probs: np.ndarray
    box: np.ndarray
    sigma: float | None = None
    jitter: float = 0.0

    @property
    def n_classes(self) -> int:
        """Systems in all: ``n_systems * n_instances`` (instance ids run over these)."""
        return self.n_systems * self.n_instances

    def system_maps(self, instance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(linear (K, d, d), offset (K, d), probs (K,))`` of global instance id."""
        s, j = divmod(int(instance), self.n_instances)
        return self.linear[s, j], self.offset[s, j], self.probs[s, j]

    def instance_box(self, instance: int) -> np.ndarray:
        s, j = divmod(int(instance), self.n_instances)
        return self.box[s, j]

    @property
    def max_ratio(self) -> float:
        """Largest ``σ_max(A_i)`` over all maps."""
        return float(maps_.spectral_norms(self.linear).max())

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "dim": self.dim, "n_maps": self.n_maps,
                "n_systems": self.n_systems, "n_instances": self.n_instances,
                "sigma": self.sigma, "jitter": self.jitter}


@functools.lru_cache(maxsize=64)
def min_uint_dtype(max_value: int) -> np.dtype:
    """:func:`generators.base.min_uint_dtype`, cached (``np.iinfo`` is slow)."""
    return _min_uint_dtype(max_value)


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}={value!r} must be an integer")
    if value < minimum or (maximum is not None and value > maximum):
        hi = "" if maximum is None else f" and at most {maximum}"
        raise ValueError(f"{name}={value} must be at least {minimum}{hi}")
    return int(value)


def auto_depth(world: World, resolution: int) -> int:
    """Smallest ``D`` with ``r_max^D · √d <= 1/resolution``: every depth-``D``
    cylinder is below one pixel of a ``resolution``-pixel box side (capped at
    ``MAX_AUTO_DEPTH``)."""
    r = world.max_ratio
    if r <= 0:
        return 1
    need = math.log(resolution * math.sqrt(world.dim)) / -math.log(r)
    return int(min(max(math.ceil(need - 1e-9), 1), MAX_AUTO_DEPTH))


def _check_depth(world: World, depth: int | None, resolution: int) -> int:
    if depth is None:
        return auto_depth(world, resolution)
    return _check_int("depth", depth, 1, MAX_DEPTH)


def _check_levels(world: World, n_levels: int, depth: int) -> int:
    n_levels = _check_int("n_address_levels", n_levels, 0)
    if n_levels > depth:
        raise ValueError(f"n_address_levels={n_levels} exceeds depth={depth}; lower it or "
                         "raise depth")
    if world.n_maps**n_levels >= 2**62:
        raise ValueError(f"n_address_levels={n_levels}: K^ℓ = {world.n_maps}^{n_levels} does "
                         "not fit in int64; lower it")
    return n_levels


def level_names(world: World, n_levels: int) -> tuple[str, ...]:
    """``system`` / ``instance`` (when more than one), then ``address1..``."""
    head = (("system",) if world.n_systems > 1 else ()) + \
        (("instance",) if world.n_instances > 1 else ())
    return (*head, *(f"address{l}" for l in range(1, n_levels + 1)))


def _id_levels(world: World, inst: np.ndarray) -> list[np.ndarray]:
    out = []
    if world.n_systems > 1:
        out.append((inst // world.n_instances).astype(min_uint_dtype(world.n_systems - 1)))
    if world.n_instances > 1:
        out.append(inst.astype(min_uint_dtype(world.n_classes - 1)))
    return out
