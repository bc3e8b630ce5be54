"""Synonym exchange in the Random Hierarchy Model (the intervention behind the
synonymic sensitivity of Cagnetta, Petrini, Tomasini, Favero & Wyart, PRX 2024).

Level ``l`` (``1 <= l <= L``; level ``L`` is the input) is a sequence of ``s**(l-1)``
tuples, each produced by one node of level ``l-1`` through its rule index. Exchanging
the level-``l`` synonyms replaces every such tuple by a *different* tuple of the same
parent, chosen uniformly among its ``m - 1`` synonyms: levels ``0..l-1`` and every
other rule index are kept, so the levels below ``l`` are re-derived from the new
symbols with the same rule indices. Only the level-``l`` tuples change meaningfully;
every latent at level ``l-1`` and above is untouched.

The paper counts levels from the input upwards: its exchange at level ``ℓ``
(``ℓ = 1`` swaps the input tuples) is ``level = L - ℓ + 1`` here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from generators import _rng
from generators.base import HierarchicalSample
from generators.rhm import World, _grow

__all__ = ["exchange_synonyms"]


def exchange_synonyms(world: World, sample_: HierarchicalSample, level: int, *,
                      rng: _rng.RNGLike = None) -> HierarchicalSample:
    """Replace every level-``level`` tuple by one of its ``m - 1`` synonyms.

    The rule index ``r`` of each node of level ``level - 1`` becomes
    ``(r + u) mod m`` with ``u`` uniform in ``1..m-1`` (so a uniform other synonym),
    the other rule indices are kept and the levels below are regrown. Raises
    ``ValueError`` for a level outside ``1..L`` or a world with ``m = 1`` (no synonyms).
    """
    L, s, m = world.n_levels, world.tuple_size, world.n_synonyms
    if isinstance(level, bool) or not isinstance(level, int | np.integer) or not 1 <= level <= L:
        raise ValueError(f"level={level!r} must be an integer between 1 and n_levels={L} "
                         "(level L is the input)")
    if m < 2:
        raise ValueError("n_synonyms=1: the world has no synonyms to exchange")
    gen = _rng.as_generator(rng)
    k = s ** (level - 1)  # nodes of level level-1
    off = (k - 1) // (s - 1)
    rules = np.array(sample_.aux["rules"], copy=True)  # (n, n_nodes)
    old = rules[:, off:off + k].astype(np.int64)
    shift = gen.integers(1, m, size=old.shape)  # (n, k) in 1..m-1: never the same rule
    rules[:, off:off + k] = ((old + shift) % m).astype(rules.dtype)
    top = sample_.levels[level - 1]
    levels = [*sample_.levels[:level], *_grow(world, level - 1, top, rules)]
    return dataclasses.replace(sample_, x=levels[-1], levels=tuple(levels),
                               aux={**sample_.aux, "rules": rules})
