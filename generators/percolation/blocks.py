"""Block coarse-graining of percolation configurations (Kadanoff blocks of b^d sites).

Every rule maps a batch ``(n, L, …, L)`` to ``(n, L/b, …, L/b)`` and can be applied
again to its own output, so one lattice is seen at scales ``b, b², …``
(``shared/docs/background.md`` §4):

- :func:`majority`: a block is occupied when more than half its sites are (ties
  follow ``tie``); the 1D 3-site version has R(p) = p³ + 3p²(1 − p).
- :func:`spanning`: a block is occupied when its occupied sites contain a path
  (nearest neighbours inside the block) from its first to its last layer along
  ``axis`` (``axis=None``: along every axis, ``"any"``: along some axis). For 2×2
  square blocks along one axis R(p) = 2p² − p⁴, fixed point (√5 − 1)/2 = 0.618.
- :func:`cluster_preserving`: on cluster-id maps; each block takes the id of the
  largest cluster (by global size, ties to the smaller id) that meets it, 0 if
  empty. Ids stay global, so the largest cluster keeps its id in every block it
  meets and every coarse id is a fine id.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from generators.percolation import labels as pl


def _blocks(a: np.ndarray, b: int) -> np.ndarray:
    """View (n, L, …) as (n, L/b, …, L/b, b, …, b) (block axes last)."""
    if isinstance(b, bool) or not isinstance(b, int | np.integer) or b < 2:
        raise ValueError(f"b={b!r} must be an integer block side >= 2")
    if a.ndim < 2:
        raise ValueError(f"configurations have shape {a.shape}; expected (n, L, ..., L)")
    shape = a.shape[1:]
    d = len(shape)
    if any(s % b for s in shape):
        raise ValueError(f"lattice shape {shape} is not divisible by b={b}; crop it to a "
                         f"multiple of {b}")
    split = [a.shape[0]]
    for s in shape:
        split += [s // b, b]
    v = a.reshape(split)
    order = [0, *range(1, 2 * d, 2), *range(2, 2 * d + 1, 2)]
    return v.transpose(order)


def majority(occupied: np.ndarray, b: int, *, tie: str = "occupied") -> np.ndarray:
    """Majority rule: (n, L, …) bool -> (n, L/b, …) bool. ``tie`` ('occupied' or
    'empty') settles blocks with exactly half their sites occupied."""
    if tie not in ("occupied", "empty"):
        raise ValueError(f"tie={tie!r} must be 'occupied' or 'empty'")
    v = _blocks(np.asarray(occupied, dtype=bool), b)
    d = occupied.ndim - 1
    count = v.sum(axis=tuple(range(1 + d, 1 + 2 * d)))
    half = b**d
    return 2 * count >= half if tie == "occupied" else 2 * count > half


def spanning(occupied: np.ndarray, b: int, *, axis: int | str | None = 0,
             lattice: str = "square") -> np.ndarray:
    """Spanning rule: (n, L, …) bool -> (n, L/b, …) bool.

    ``axis``: an int (span along that axis), None (along every axis) or "any".
    ``lattice`` picks the neighbours inside a block ('triangular' adds the
    e_0 + e_1 diagonal).
    """
    occupied = np.asarray(occupied, dtype=bool)
    d = occupied.ndim - 1
    if axis is not None and axis != "any" and (isinstance(axis, str) or not 0 <= axis < d):
        raise ValueError(f"axis={axis!r} must be an axis 0..{d - 1}, None or 'any'")
    v = np.ascontiguousarray(_blocks(occupied, b))  # (n, *grid, *block)
    offs = pl.offsets(lattice, d)
    # label every block independently: no connectivity along the batch and grid axes
    lab, total = ndimage.label(v, structure=pl.structure(offs, batch_axes=1 + d))
    lab = np.asarray(lab)
    crosses = []
    axes = range(d) if axis is None or axis == "any" else [int(axis)]
    for k in axes:
        lo = np.zeros(total + 1, dtype=bool)
        hi = np.zeros(total + 1, dtype=bool)
        lo[lab.take(0, axis=1 + d + k).ravel()] = True
        hi[lab.take(b - 1, axis=1 + d + k).ravel()] = True
        span = lo & hi
        span[0] = False
        crosses.append(span[lab].any(axis=tuple(range(1 + d, 1 + 2 * d))))
    out = np.stack(crosses)  # (n_axes, n, *grid)
    return np.asarray(out.any(axis=0) if axis == "any" else out.all(axis=0))


def cluster_preserving(labels: np.ndarray, b: int) -> np.ndarray:
    """Cluster-preserving rule on id maps (n, L, …) int -> (n, L/b, …) int: each
    block takes the id of the globally largest cluster meeting it (0 if none)."""
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and labels.min() < 0):
        raise ValueError("labels must be non-negative integer cluster ids (0 = empty)")
    n = labels.shape[0]
    d = labels.ndim - 1
    flat = labels.reshape(n, -1).astype(np.int64)
    width = int(flat.max()) + 1 if flat.size else 1
    sizes = np.bincount((flat + width * np.arange(n)[:, None]).ravel(),
                        minlength=n * width).reshape(n, width)
    sizes[:, 0] = 0
    # rank = size, ties to the smaller id; encode as one sortable key
    key = sizes * width + (width - 1 - np.arange(width))
    key[:, 0] = -1
    block_keys = np.take_along_axis(key, flat, axis=1).reshape(labels.shape)
    best = _blocks(block_keys, b).max(axis=tuple(range(1 + d, 1 + 2 * d)))
    ids = np.where(best < 0, 0, width - 1 - best % width)
    return ids.astype(labels.dtype)
