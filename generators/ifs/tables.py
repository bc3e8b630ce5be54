"""Composed-map tables of fixed-depth IFS sampling.

``D`` address digits are cut into chunks of at most ``m`` digits (``K^m <=
TABLE_SIZE``). For each system and chunk length ``L`` the ``K^L`` composed maps
``w_{a_1} ∘ … ∘ w_{a_L}`` (word code ``Σ a_j K^{L-j}``, first letter most
significant), the images of the base point ``x_0`` (fixed point of map 0) and an
alias table of the word law ``Π_j p_{a_j}`` are tabulated once, so a point costs
one table gather per chunk instead of ``D`` affine maps. The per-point loops that
read them are in :mod:`generators.ifs.kernels`; :func:`evaluate` is their numpy
form, used for explicit word lists (:func:`generators.ifs.cylinder_points`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from generators.ifs import maps as maps_

if TYPE_CHECKING:
    from generators.ifs.world import World

#: entries of one composed-map table: 4096 keeps a system's tables near 300 kB
#: (in cache) while D = 12 needs at most two gathers for K <= 4
TABLE_SIZE = 4096
#: points per slice in :func:`evaluate` (64 kB per float64 temporary)
SLICE = 8192
#: digits of a chunk are unpacked from one uint64 per word (8 bytes)
MAX_TABLE_DIGITS = 8


def table_digits(world: World) -> int:
    """Digits per tabulated chunk: the largest ``m <= 8`` with ``K^m <= TABLE_SIZE``."""
    m = math.floor(math.log(TABLE_SIZE) / math.log(world.n_maps) + 1e-9)
    return max(1, min(m, MAX_TABLE_DIGITS))


@dataclasses.dataclass(frozen=True)
class Table:
    """Composed maps of all ``K^L`` words of length ``L`` (word code ``c``, first
    letter most significant): ``lin`` (d, d, K^L), ``off`` (d, K^L), image points of
    ``x_0`` ``pts`` (d, K^L), and an alias table ``(accept, alias)`` (K^L,) of the
    word law ``Π_j p_{a_j}`` (None when the maps are equiprobable)."""

    lin: np.ndarray
    off: np.ndarray
    pts: np.ndarray
    alias: tuple[np.ndarray, np.ndarray] | None


@functools.lru_cache(maxsize=512)
def table(world: World, instance: int, length: int) -> Table:
    lin1, off1, p1 = world.system_maps(instance)
    d = world.dim
    lin, off, prob = np.eye(d)[None], np.zeros((1, d)), np.ones(1)
    for _ in range(length):  # word c·a: (w_c ∘ w_a)(x) = A_c A_a x + A_c b_a + b_c
        off = (np.einsum("cij,aj->cai", lin, off1) + off[:, None, :]).reshape(-1, d)
        lin = np.einsum("cij,ajk->caik", lin, lin1).reshape(-1, d, d)
        prob = np.outer(prob, p1).ravel()
    x0 = maps_.fixed_points(lin1[:1], off1[:1])[0]  # (d,)
    pts = np.einsum("cij,j->ic", lin, x0) + off.T  # (d, K^L)
    uniform = bool(np.all(p1 == p1[0]))
    alias = None if uniform else alias_table(prob)
    return Table(lin=np.ascontiguousarray(lin.transpose(1, 2, 0)),
                  off=np.ascontiguousarray(off.T), pts=np.ascontiguousarray(pts), alias=alias)


def alias_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias method, Vose's construction (Vose, IEEE TSE 17, 1991): with
    ``t = u N``, ``i = floor(t)``, outcome ``i`` if ``t - i < accept[i]`` else
    ``alias[i]`` has law ``p`` (N,). Hand-written: numpy's ``Generator.choice``
    uses an O(log N) CDF search per draw; this is O(1)."""
    n = len(p)
    scaled = p / p.sum() * n
    accept, alias = np.ones(n), np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, l = small.pop(), large.pop()
        accept[s], alias[s] = scaled[s], l
        scaled[l] -= 1.0 - scaled[s]
        (small if scaled[l] < 1.0 else large).append(l)
    return accept, alias  # leftovers (rounding) keep accept = 1


@functools.lru_cache(maxsize=64)
def digit_table(k: int, length: int) -> np.ndarray:
    """Digits of every word code packed in one uint64 each (K^L,): byte ``j`` of
    the little-endian word is letter ``j`` (first letter first); one 1-D gather
    then unpacks a whole chunk of an address."""
    codes = np.arange(k**length)
    out = np.zeros((k**length, 8), dtype=np.uint8)
    for j in range(length - 1, -1, -1):
        codes, out[:, j] = np.divmod(codes, k)
    return out.view("<u8").ravel()


def chunk_lengths(world: World, depth: int) -> tuple[int, ...]:
    """Digits per tabulated chunk, outermost first; they sum to ``depth``."""
    m = table_digits(world)
    inner = min(m, depth)
    rest, outer = depth - inner, []
    while rest > 0:
        outer.append(min(m, rest))
        rest -= outer[-1]
    return (*outer, inner)


def evaluate(world: World, instance: int, lengths: Sequence[int],
              codes: np.ndarray) -> np.ndarray:
    """Points (d, n): the innermost chunk's table point, then each outer chunk's
    composed map, innermost to outermost.

    Works on slices of ``SLICE`` points: the temporaries stay in cache and are
    recycled by the allocator, while whole-array temporaries of a few MB are fresh
    ``mmap`` pages each time (page faults cost more than the arithmetic)."""
    d, n = world.dim, codes.shape[1]
    inner = table(world, instance, lengths[-1])
    outer = [table(world, instance, lengths[i]) for i in range(len(lengths) - 1)]
    out = np.empty((d, n))
    for a in range(0, n, SLICE):
        b = min(a + SLICE, n)
        x = [inner.pts[r].take(codes[-1, a:b]) for r in range(d)]  # d x (m,)
        for i in range(len(outer) - 1, -1, -1):
            t, c = outer[i], codes[i, a:b]
            new = []
            for r in range(d):
                acc = t.off[r].take(c)
                for s in range(d):
                    term = t.lin[r, s].take(c)
                    term *= x[s]
                    acc += term
                new.append(acc)
            x = new
        for r in range(d):
            out[r, a:b] = x[r]
    return out
