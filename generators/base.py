"""The protocol every generator follows, and the sample container they return.

A generator module provides::

    World                                  # frozen dataclass: the fixed structure
    make_world(*, ..., rng=None) -> World  # rules, grammar, maps, lattice ladder
    sample(world, n_samples, *, rng=None, ...) -> HierarchicalSample
    Config                                 # frozen dataclass: make_world + sample kwargs

and is listed in :data:`generators.REGISTRY`. Levels are returned root/coarsest
first; every level is an integer array whose leading axis is the sample axis.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class HierarchicalSample:
    """Observed data with every latent level.

    Attributes:
        x: observed data, leading axis ``n_samples`` (tokens, pixels, points).
        levels: latent levels, root/coarsest first; ``levels[l]`` is an integer
            array with leading axis ``n_samples``.
        level_names: one name per level (used in files, probes and plots).
        world: the fixed structure the sample was drawn from.
        meta: JSON-able facts: generator name, parameters, package version,
            seed entropy, layout notes.
        aux: further per-sample arrays aligned with ``x`` (rule indices,
            lengths, per-sample physics), leading axis ``n_samples``.
    """

    x: np.ndarray
    levels: tuple[np.ndarray, ...]
    level_names: tuple[str, ...]
    world: Any
    meta: Mapping[str, Any]
    aux: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.level_names):
            raise ValueError(
                f"{len(self.levels)} levels but {len(self.level_names)} level names"
            )
        n = self.x.shape[0]
        for name, arr in (*zip(self.level_names, self.levels, strict=True), *self.aux.items()):
            if arr.shape[0] != n:
                raise ValueError(f"array {name!r} has {arr.shape[0]} rows, x has {n}")

    @property
    def n_samples(self) -> int:
        return int(self.x.shape[0])

    def level(self, name: str) -> np.ndarray:
        """The level called ``name``."""
        try:
            return self.levels[self.level_names.index(name)]
        except ValueError:
            raise KeyError(f"no level {name!r}; levels are {list(self.level_names)}") from None

    def __getitem__(self, index: Any) -> HierarchicalSample:
        """Select samples (a slice, an index array or a boolean mask)."""
        return dataclasses.replace(
            self,
            x=self.x[index],
            levels=tuple(lv[index] for lv in self.levels),
            aux={k: v[index] for k, v in self.aux.items()},
        )

    def __len__(self) -> int:
        return self.n_samples


def concat(parts: Sequence[HierarchicalSample]) -> HierarchicalSample:
    """Concatenate samples of one world along the sample axis."""
    if not parts:
        raise ValueError("concat needs at least one sample")
    first = parts[0]
    if len(parts) == 1:
        return first
    x = np.concatenate([p.x for p in parts])
    levels = tuple(np.concatenate([p.levels[i] for p in parts]) for i in range(len(first.levels)))
    aux = {k: np.concatenate([p.aux[k] for p in parts]) for k in first.aux}
    return dataclasses.replace(first, x=x, levels=levels, aux=aux)


def min_uint_dtype(max_value: int) -> np.dtype:
    """Smallest unsigned integer dtype holding ``0..max_value``."""
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if max_value <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"max_value={max_value} does not fit in 64 bits")


class GeneratorSpec(NamedTuple):
    """A registry entry: the config dataclass and the module implementing it."""

    name: str
    config: type
    module: ModuleType

    def split_config(self, cfg: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split a config into ``make_world`` and ``sample`` keyword arguments
        (by the functions' signatures; fields in neither raise)."""
        world_params = set(inspect.signature(self.module.make_world).parameters)
        sample_params = set(inspect.signature(self.module.sample).parameters)
        wk: dict[str, Any] = {}
        sk: dict[str, Any] = {}
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if f.name in world_params:
                wk[f.name] = value
            elif f.name in sample_params:
                sk[f.name] = value
            else:
                raise TypeError(f"{self.name} config field {f.name!r} is not a parameter of "
                                "make_world or sample")
        return wk, sk

    def make_world(self, cfg: Any, rng: Any) -> Any:
        wk, _ = self.split_config(cfg)
        return self.module.make_world(**wk, rng=rng)

    def sample(self, world: Any, cfg: Any, n_samples: int, rng: Any) -> HierarchicalSample:
        _, sk = self.split_config(cfg)
        return self.module.sample(world, n_samples, rng=rng, **sk)

    def iter_chunks(self, world: Any, cfg: Any, n_samples: int, rng: Any,
                    chunk_size: int) -> Iterator[HierarchicalSample]:
        """Chunks of the draw ``sample(world, n_samples, rng=rng)``, in order; their
        concatenation equals that draw whatever ``chunk_size`` is."""
        _, sk = self.split_config(cfg)
        fn = getattr(self.module, "iter_chunks", None)
        if fn is not None:
            return fn(world, n_samples, rng=rng, chunk_size=chunk_size, **sk)
        return iter([self.module.sample(world, n_samples, rng=rng, **sk)])
