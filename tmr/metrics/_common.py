"""Shared helpers of the metrics package: validation, label ids, nearest neighbours.

Every metric works in float64 on a layer's activations ``h`` of shape
``(n_samples, d)``; labels are integer arrays with leading axis ``n_samples``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

# Above this dimension a k-d tree visits nearly every leaf (Weber, Schek & Blott
# 1998), so exact neighbours are found faster by blocked BLAS distances.
KDTREE_MAX_DIM = 16
# Rows per block of the brute-force distance matrix: 1024 x n float64 stays
# below ~80 MB at n = 10,000.
DIST_BLOCK_ROWS = 1024


def as_features(h: object, name: str = "h") -> np.ndarray:
    """``h`` as a C-contiguous float64 ``(n_samples, d)`` array (1-D becomes ``d = 1``)."""
    arr = np.asarray(h, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (n_samples, d); got shape {arr.shape}: "
                         "flatten each sample first (h.reshape(len(h), -1))")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} has {arr.shape[0]} samples; need at least 2")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; check the activations")
    return np.ascontiguousarray(arr)


def level_labels(level: object) -> np.ndarray:
    """One integer id per sample for a latent level.

    A level of shape ``(n_samples, ...)`` (e.g. an RHM level ``(n, s**l)``) is a
    discrete variable whose value is the whole row; rows are mapped to ids
    ``0..K-1`` by ``np.unique(axis=0)``. Returns ``(n_samples,)`` int64.
    """
    arr = np.asarray(level)
    if arr.ndim == 0:
        raise ValueError("a level must have a leading sample axis; got a scalar")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)):
        raise TypeError(f"level must be an integer array; got dtype {arr.dtype}")
    flat = arr.reshape(arr.shape[0], -1)  # (n_samples, n_positions)
    if flat.shape[1] == 1:
        _, ids = np.unique(flat[:, 0], return_inverse=True)
    else:
        _, ids = np.unique(flat, axis=0, return_inverse=True)
    return ids.reshape(-1).astype(np.int64)


def check_labels(y: object, n: int, name: str = "y") -> np.ndarray:
    """Labels ``y`` as ``(n,)`` int64 ids (multi-column levels via :func:`level_labels`)."""
    ids = level_labels(y)
    if ids.shape[0] != n:
        raise ValueError(f"{name} has {ids.shape[0]} samples but h has {n}; align them")
    return ids


def entropy_of_ids(ids: np.ndarray) -> float:
    """Plug-in entropy ``-sum p log p`` (nats) of integer ids ``(n,)``."""
    counts = np.bincount(ids)
    p = counts[counts > 0] / ids.shape[0]
    return float(-(p * np.log(p)).sum())


def row_ids(a: np.ndarray) -> np.ndarray:
    """Ids ``(n,)`` of the distinct rows of ``a`` ``(n, ...)`` (exact equality of bytes).

    Each row is viewed as one opaque byte string, so the sort compares memory
    blocks instead of columns (several times faster than ``np.unique(axis=0)``).
    Floats: -0.0 and 0.0 differ as bytes, so they are normalised first.
    """
    flat = np.ascontiguousarray(a.reshape(a.shape[0], -1))
    if np.issubdtype(flat.dtype, np.floating):
        flat = flat + 0.0  # -0.0 -> 0.0
    rows = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).reshape(-1)
    _, ids = np.unique(rows, return_inverse=True)
    return ids.reshape(-1).astype(np.int64)


def first_of_distinct_rows(a: np.ndarray) -> np.ndarray:
    """Ascending indices ``(n_distinct,)`` of the first occurrence of each distinct row."""
    flat = np.ascontiguousarray(a.reshape(a.shape[0], -1))
    if np.issubdtype(flat.dtype, np.floating):
        flat = flat + 0.0  # -0.0 -> 0.0
    rows = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).reshape(-1)
    _, first = np.unique(rows, return_index=True)
    return np.sort(first)


def class_sums(values: np.ndarray, ids: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class sums ``(n_classes, d)`` of ``values`` ``(n, d)``: a sparse one-hot product
    (much faster than ``np.add.at``)."""
    onehot = sparse.csr_matrix((np.ones(ids.shape[0]), (ids, np.arange(ids.shape[0]))),
                               shape=(n_classes, ids.shape[0]))  # (C, n)
    return np.asarray(onehot @ values)


def sq_distance_blocks(h: np.ndarray, block: int = DIST_BLOCK_ROWS
                       ) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, D2)`` with ``D2 = |h_i - h_j|^2`` of shape ``(len(rows), n)``.

    Uses ``|a|^2 + |b|^2 - 2 a.b`` through BLAS, clipped at 0; the diagonal is
    set to exactly 0.
    """
    sq = np.einsum("ij,ij->i", h, h)  # (n,)
    n = h.shape[0]
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        d2 = sq[rows, None] + sq[None, :] - 2.0 * (h[rows] @ h.T)  # (b, n)
        np.maximum(d2, 0.0, out=d2)
        idx = np.arange(rows.start, rows.stop)
        d2[idx - rows.start, idx] = 0.0
        yield rows, d2


def knn_distances(h: np.ndarray, k: int) -> np.ndarray:
    """Euclidean distances ``(n, k)`` from each point to its ``k`` nearest others, ascending.

    scipy's k-d tree in low dimension, blocked BLAS brute force above
    :data:`KDTREE_MAX_DIM` (both exact).
    """
    n, d = h.shape
    if not 1 <= k < n:
        raise ValueError(f"k={k} must be in [1, n_samples-1={n - 1}]")
    if d <= KDTREE_MAX_DIM:
        dist, _ = cKDTree(h).query(h, k=k + 1)  # (n, k+1), column 0 is the point itself
        return np.asarray(dist[:, 1:], dtype=np.float64)
    out = np.empty((n, k))
    for rows, d2 in sq_distance_blocks(h):
        idx = np.arange(rows.start, rows.stop)
        d2[idx - rows.start, idx] = np.inf
        part = np.partition(d2, k - 1, axis=1)[:, :k]  # (b, k)
        out[rows] = np.sqrt(np.sort(part, axis=1))
    return out


def subsample_rows(n: int, max_samples: int | None, rng: int | None) -> np.ndarray | None:
    """Sorted indices of ``max_samples`` of ``n`` rows drawn without replacement, or None.

    For the O(n^2 d) k-NN estimators: None (keep all) when ``max_samples`` is None
    or at least ``n``.
    """
    if max_samples is None or max_samples >= n:
        return None
    if max_samples < 3:
        raise ValueError(f"max_samples={max_samples} must be at least 3 (or None for all)")
    return np.sort(np.random.default_rng(rng).choice(n, size=max_samples, replace=False))
