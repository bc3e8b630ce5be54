"""Hierarchical data with every latent level (numpy, scipy, networkx only).

Each generator follows one protocol (see :mod:`generators.base`)::

    world = generators.rhm.make_world(vocab_size=8, n_classes=8, n_synonyms=2,
                                      tuple_size=2, n_levels=3, rng=0)
    s = generators.rhm.sample(world, 1000, rng=1)
    s.x, s.levels, s.level_names

and is listed in :data:`REGISTRY` by name.

Families load lazily: ``import generators`` imports none of them, and an attribute
such as ``generators.pcfg`` imports that family (and only it) on first access
(module ``__getattr__``, PEP 562). Compiled kernels are built on their first call
(:mod:`generators._jit`), so neither ``import generators`` nor ``import generators.rhm``
imports numba.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from generators._rng import as_generator, as_seed_sequence, stream, streams
from generators.base import GeneratorSpec, HierarchicalSample, concat
from generators.registry import FAMILIES, Registry

if TYPE_CHECKING:  # the type checker sees the attributes __getattr__ resolves
    from generators import ifs, pcfg, percolation, percolation_mf, rhm

#: name -> (config dataclass, module); a family's module is imported on first lookup
REGISTRY: Registry = Registry(FAMILIES)


def __getattr__(name: str) -> Any:
    """Import a family on first access (``generators.pcfg`` -> :mod:`generators.pcfg`)."""
    if name in FAMILIES:
        return importlib.import_module(FAMILIES[name])
    raise AttributeError(f"module 'generators' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *FAMILIES})


__all__ = [
    "REGISTRY",
    "GeneratorSpec",
    "HierarchicalSample",
    "as_generator",
    "as_seed_sequence",
    "concat",
    "ifs",
    "pcfg",
    "percolation",
    "percolation_mf",
    "rhm",
    "stream",
    "streams",
]
