"""Probe targets from latent levels of any shape and dtype (the pooling rule).

A probe scores one integer label per sample and position. Levels come as

- per-sample scalars ``(n,)`` of any dtype: integers and booleans are used as they
  are; other values (floats, strings) are coded by their rank among the distinct
  values (``np.unique``); NaN becomes -1;
- per-position sequences ``(n, P)`` (RHM tree levels): one target per position;
- per-site / per-pixel maps ``(n, H, W)`` or ``(n, *shape)`` with two or more axes
  per sample (percolation cluster ids, IFS address maps): **pooled to one label per
  sample** with ``pool = "majority"``: the most frequent label over the valid
  (``>= 0``) pixels, ties going to the smallest label; a sample with no valid pixel
  gets -1. With ``pool = "none"`` every pixel is its own position (H·W targets).

Per-sample ground truth from ``aux`` can be probed too (``probe.aux``, named
``aux.<name>`` in the tables; :func:`aux_level`): trailing axes become positions
(percolation ``spans`` (n, K, d): one target per level and axis), booleans and integers
are used as they are, real values are cut into ``bins`` equal-count bins per position
(quantiles of the probe sample), so ``aux.largest_fraction`` asks "which quartile of
largest-cluster fraction at p_j".

Everywhere ``-1`` (or any negative label) means "empty / ambiguous / not defined":
the probes drop those rows from that target's fit and score, and report the number
of scored held-out rows in the ``n`` column.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

POOLS = ("majority", "none")
INVALID = -1
#: (sample, label) counters held at once by :func:`pool_majority` (32 MiB of int64)
COUNT_CELLS = 2**22


def level_codes(y: np.ndarray) -> np.ndarray:
    """Integer codes (int64, same shape) of a level of any dtype; negatives and NaN
    mean invalid (-1)."""
    y = np.asarray(y)
    if y.dtype.kind in "iub":
        out = y.astype(np.int64)
        out[out < 0] = INVALID
        return out
    if y.dtype.kind in "fc":
        bad = np.isnan(y)
        codes = np.full(y.shape, INVALID, dtype=np.int64)
        codes[~bad] = np.unique(y[~bad], return_inverse=True)[1].reshape(-1)
        return codes
    return np.unique(y, return_inverse=True)[1].reshape(y.shape).astype(np.int64)


def pool_majority(y: np.ndarray) -> np.ndarray:
    """``(n, *shape)`` labels -> ``(n,)``: the most frequent label >= 0 of each sample
    (ties -> the smallest such label), -1 where a sample has no label >= 0."""
    flat = level_codes(y).reshape(len(y), -1)  # (n, n_pixels)
    n = len(flat)
    out = np.full(n, INVALID, dtype=np.int64)  # (n,)
    valid = flat >= 0  # (n, n_pixels)
    has: np.ndarray = np.asarray(valid.any(axis=1))  # (n,)
    if not has.any():
        return out
    # one bincount over (sample, label) pairs per chunk of samples:
    # count[i, c] = number of pixels of sample i labelled c
    n_labels = int(flat.max()) + 1
    step = max(1, COUNT_CELLS // n_labels)
    for lo in range(0, n, step):
        f, v = flat[lo:lo + step], valid[lo:lo + step]  # (m, n_pixels)
        m = len(f)
        rows = np.broadcast_to(np.arange(m)[:, None], f.shape)[v]
        counts = np.bincount(rows * n_labels + f[v], minlength=m * n_labels)
        counts = counts.reshape(m, n_labels)  # (m, n_labels)
        # argmax returns the first maximum, i.e. the smallest tied label
        out[lo:lo + m] = np.where(has[lo:lo + m], counts.argmax(axis=1), INVALID)
    return out


AUX_PREFIX = "aux."


def aux_level(a: np.ndarray, bins: int) -> np.ndarray:
    """``(n, ...)`` per-sample aux array -> ``(n, P)`` int64 targets (trailing axes
    flattened to positions). Booleans and integers are kept (negatives -> -1); reals
    become equal-count bins ``0..bins-1`` per position (edges: the ``k/bins``
    quantiles of that position; ties share a bin; NaN -> -1)."""
    a = np.asarray(a)
    flat = a.reshape(len(a), -1)
    if a.dtype.kind in "iub":
        return level_codes(flat)
    if a.dtype.kind != "f":
        raise ValueError(f"aux arrays to probe must be numeric, got dtype {a.dtype}")
    out = np.full(flat.shape, INVALID, dtype=np.int64)
    for j in range(flat.shape[1]):
        col = flat[:, j]
        ok = ~np.isnan(col)
        if not ok.any():
            continue
        edges = np.quantile(col[ok], np.arange(1, bins) / bins)
        out[ok, j] = np.searchsorted(edges, col[ok], side="right")
    return out


def probe_levels(levels: Mapping[str, np.ndarray], pool: str = "majority"
                 ) -> dict[str, np.ndarray]:
    """``{name: (n, P) int64}`` targets of raw levels ``{name: (n, ...)}`` by the rule
    in the module docstring (maps with >= 2 axes per sample pooled by ``pool``)."""
    if pool not in POOLS:
        raise ValueError(f"probe.pool={pool!r} must be one of {POOLS}")
    out = {}
    for name, y in levels.items():
        y = np.asarray(y)
        if y.ndim >= 3 and pool == "majority":
            out[name] = pool_majority(y)[:, None]
        else:
            out[name] = level_codes(y).reshape(len(y), -1)
    return out
