"""Eigen-spectrum analysis shared by every spectral scheme.

- ``eigh_desc``: symmetric eigendecomposition, eigenvalues in decreasing order.
- ``power_law_fit``: least-squares line through ``log λ_k`` vs ``log k``,
  λ_k ≈ A k^(−α) (the decay exponent of layer / kernel spectra; cf. the spectral bias
  literature, e.g. Canatar, Bordelon & Pehlevan 2021).
- ``spectral_gaps``: ratios λ_k / λ_{k+1}; the largest are the "eigenvalue cliffs".
- ``cutoff_for_budget``: smallest k whose discarded fraction Σ_{j>k} λ_j / Σ_j λ_j is
  at most the budget (the variance budget of PCA; the same for any PSD spectrum).
- ``alignment_relevance``: for sample-space modes u_j (unit norm), the fraction of a
  centred target's energy on each mode, (u_jᵀ y_c)² / ‖y_c‖² (per-mode kernel–target
  alignment, Cristianini et al. 2002; summed over target columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Eigenvalues below this fraction of the largest are treated as zero in fits and ratios.
REL_EIG_FLOOR = 1e-12


def eigh_desc(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``(m,)`` (decreasing, clipped at 0), eigenvectors ``(m, m)`` of a PSD matrix."""
    m = np.asarray(matrix, dtype=np.float64)  # (m, m)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {m.shape}")
    sym = 0.5 * (m + m.T)
    vals, vecs = np.linalg.eigh(sym)
    order = np.argsort(vals)[::-1]
    return np.clip(vals[order], 0.0, None), vecs[:, order]


@dataclass(frozen=True)
class PowerLawFit:
    """λ_k ≈ amplitude · k^(−alpha) over ranks ``k_min..k_max`` (1-based); R² of the log fit."""

    alpha: float
    amplitude: float
    r2: float
    k_min: int
    k_max: int


def power_law_fit(eigvals: np.ndarray, k_min: int = 1, k_max: int | None = None) -> PowerLawFit:
    """Fit λ_k ≈ A k^(−α) by least squares on (log k, log λ_k), ranks k_min..k_max inclusive."""
    lam = np.asarray(eigvals, dtype=np.float64)  # (m,) decreasing
    positive = lam > REL_EIG_FLOOR * max(float(lam.max(initial=0.0)), 1e-300)
    n_pos = int(positive.sum())
    k_max = n_pos if k_max is None else min(k_max, n_pos)
    if k_min < 1 or k_max - k_min < 1:
        raise ValueError(f"power-law fit needs at least two positive eigenvalues in ranks "
                         f"[{k_min}, {k_max}]; widen the range")
    k = np.arange(k_min, k_max + 1, dtype=np.float64)  # (n_fit,)
    y = np.log(lam[k_min - 1:k_max])  # (n_fit,)
    x = np.log(k)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return PowerLawFit(alpha=float(-slope), amplitude=float(np.exp(intercept)), r2=r2,
                       k_min=k_min, k_max=k_max)


def spectral_gaps(eigvals: np.ndarray, top: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Gap ratios λ_k/λ_{k+1} ``(m-1,)`` and the ranks k (1-based) of the ``top`` largest.

    A cliff at rank k means keeping exactly k modes is a natural cutoff.
    """
    lam = np.asarray(eigvals, dtype=np.float64)  # (m,)
    floor = REL_EIG_FLOOR * max(float(lam.max(initial=0.0)), 1e-300)
    lam = np.maximum(lam, floor)
    ratios = lam[:-1] / lam[1:]  # (m-1,)
    order = np.argsort(ratios)[::-1][:top]
    return ratios, order + 1


def tail_fraction(eigvals: np.ndarray) -> np.ndarray:
    """Discarded fraction when keeping k = 0..m modes: Σ_{j>k} λ_j / Σ λ, ``(m+1,)``."""
    lam = np.asarray(eigvals, dtype=np.float64)  # (m,)
    total = float(lam.sum())
    if total <= 0:
        return np.zeros(lam.size + 1)
    kept = np.concatenate([[0.0], np.cumsum(lam)])  # (m+1,)
    return np.clip(1.0 - kept / total, 0.0, 1.0)


def cutoff_for_budget(eigvals: np.ndarray, budget: float) -> int:
    """Smallest k with Σ_{j>k} λ_j / Σ_j λ_j ≤ budget (0 ≤ budget < 1)."""
    if not 0.0 <= budget < 1.0:
        raise ValueError(f"budget={budget} must be in [0, 1): the discarded fraction allowed")
    frac = tail_fraction(eigvals)  # (m+1,)
    # small slack for round-off in the cumulative sum
    return int(np.argmax(frac <= budget + 1e-12))


def _centred_target(y: np.ndarray, n: int) -> np.ndarray:
    """Target as a centred float matrix ``(n, m)``; integer 1-D labels become one-hot."""
    t = np.asarray(y)
    if t.shape[0] != n:
        raise ValueError(f"target has {t.shape[0]} rows but the modes have {n} samples")
    if t.ndim == 1 and np.issubdtype(t.dtype, np.integer):
        _, inv = np.unique(t, return_inverse=True)
        t = np.eye(int(inv.max()) + 1)[inv]  # (n, n_classes)
    t = t.reshape(n, -1).astype(np.float64)
    return t - t.mean(axis=0, keepdims=True)


def alignment_relevance(sample_modes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-mode fraction of the centred target's energy, Σ_c (u_jᵀ y_c)² / ‖y_c‖²_F, ``(r,)``.

    ``sample_modes`` ``(n, r)``: each column a mode evaluated on the n samples (PCA scores
    or kernel eigenvectors); columns are normalised here. ``y``: ``(n,)`` integer labels
    (one-hot encoded) or real targets ``(n,)`` / ``(n, m)``.
    """
    u = np.asarray(sample_modes, dtype=np.float64)  # (n, r)
    t = _centred_target(y, u.shape[0])  # (n, m)
    norms = np.linalg.norm(u, axis=0)
    u = u / np.where(norms > 0, norms, 1.0)
    total = float((t ** 2).sum())
    if total == 0:
        return np.zeros(u.shape[1])
    return ((u.T @ t) ** 2).sum(axis=1) / total
