"""Score a tool's features against known latent variables.

A *latent variable* is one (level, position, value) triple; its indicator is
y_i = [level_i[position] == value]. For a feature column f (n,):

- AUROC (Mann–Whitney): A = (R₊ − n₁(n₁ + 1)/2) / (n₁ n₀), R₊ the sum of the average ranks
  of f over the positives (ties share ranks, so a tie counts ½). A = 1: f separates the
  latent perfectly from above; 0.5: no information; 0: perfectly from below. Features of
  PCA/kernel tools have arbitrary sign, so the score of a latent is max_j max(A_j, 1 − A_j)
  and the sign (+1 if A_j ≥ ½) is recorded beside it.
- F1 of the best feature at its best threshold t (oriented by that sign):
  F1 = 2 TP / (2 TP + FP + FN) over the thresholds between distinct values.
- Monosemantic match: a latent whose best feature has oriented AUROC ≥ ``MONO_AUROC``.
- Canonicity of two dictionaries D₁ (m₁, d), D₂ (m₂, d): the mean cosine of the one-to-one
  matching of their unit rows that maximises the summed cosine (Hungarian algorithm,
  ``scipy.optimize.linear_sum_assignment``); 1 for a dictionary and any permutation of it.
- FVU (fraction of variance unexplained): Σ‖x − x̂‖² / Σ‖x − x̄‖².
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata

__all__ = ["MONO_AUROC", "Latents", "auroc_matrix", "best_f1", "canonicity", "fvu",
           "latent_indicators"]

# A latent counts as monosemantically matched when one feature reaches this AUROC: a
# randomly drawn positive outranks a randomly drawn negative 95 % of the time.
MONO_AUROC = 0.95
# Latent values rarer than this (count of positives or negatives) are not scored: their
# AUROC has a standard error above ~0.1 (Hanley & McNeil 1982).
MIN_COUNT = 10
# Feature columns ranked at a time by auroc_matrix (4096 samples × 512 floats = 16 MB).
RANK_CHUNK = 512


@dataclass(frozen=True)
class Latents:
    """Indicators of the latent variables: ``y`` ``(n, m)`` bool, and per column its level
    name, position and value."""

    y: np.ndarray
    level: list[str]
    position: list[int]
    value: list[int]


def latent_indicators(levels: Mapping[str, np.ndarray], *, min_count: int = MIN_COUNT
                      ) -> Latents:
    """One indicator column per (level, position, value) of ``levels``
    ``{name: (n,) or (n, P) ints}``; negative entries (padding) are never positive, values with
    fewer than ``min_count`` positives or negatives are left out, as are constant positions."""
    cols: list[np.ndarray] = []
    names: list[str] = []
    pos: list[int] = []
    vals: list[int] = []
    for name, arr in levels.items():
        a = np.asarray(arr)
        a = a.reshape(len(a), -1)  # (n, P)
        for p in range(a.shape[1]):
            col = a[:, p]
            for v in np.unique(col[col >= 0]):
                y = col == v
                if min(y.sum(), (~y).sum()) < min_count:
                    continue
                cols.append(y)
                names.append(name)
                pos.append(p)
                vals.append(int(v))
    n = len(next(iter(levels.values()))) if levels else 0
    y = np.stack(cols, axis=1) if cols else np.zeros((n, 0), dtype=bool)
    return Latents(y=y, level=names, position=pos, value=vals)


def auroc_matrix(features: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mann–Whitney AUROC ``(k, m)`` of every feature column ``(n, k)`` for every indicator
    column ``(n, m)`` (module docstring), with average ranks for ties."""
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    yy = np.asarray(y, dtype=np.float64).reshape(len(y), -1)  # (n, m)
    if f.shape[0] != yy.shape[0]:
        raise ValueError(f"features have {f.shape[0]} rows, indicators {yy.shape[0]}")
    n1 = yy.sum(0)  # (m,)
    n0 = yy.shape[0] - n1
    if np.any(n1 == 0) or np.any(n0 == 0):
        raise ValueError("every indicator needs positives and negatives for an AUROC")
    out = np.empty((f.shape[1], yy.shape[1]))
    for lo in range(0, f.shape[1], RANK_CHUNK):  # (n, chunk) ranks at a time: bounded memory
        ranks = rankdata(f[:, lo:lo + RANK_CHUNK], axis=0)  # average ranks
        out[lo:lo + RANK_CHUNK] = ranks.T @ yy  # R₊ per (feature, indicator)
    return (out - n1 * (n1 + 1) / 2) / (n1 * n0)


def best_f1(feature: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(max F1, its threshold t) of the rule ``feature ≥ t`` for indicator ``y`` (n,)."""
    f = np.asarray(feature, dtype=np.float64)
    yb = np.asarray(y, dtype=bool)
    order = np.argsort(-f, kind="stable")
    fs, ys = f[order], yb[order]
    tp = np.cumsum(ys)  # predicted positive = the first i+1 rows
    fp = np.cumsum(~ys)
    last = np.r_[fs[1:] != fs[:-1], True]  # cut only between distinct values
    n1 = yb.sum()
    f1 = np.where(last, 2 * tp / np.maximum(tp + fp + n1, 1), -1.0)
    i = int(np.argmax(f1))
    return float(f1[i]), float(fs[i])


def unit_rows(d: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero)."""
    a = np.asarray(d, dtype=np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-300)


def canonicity(d1: np.ndarray, d2: np.ndarray, *, signed: bool = True) -> float:
    """Mean cosine of the Hungarian one-to-one matching of the rows of ``d1`` ``(m₁, d)``
    and ``d2`` ``(m₂, d)`` (min(m₁, m₂) pairs); ``signed=False`` uses |cos| (for tools whose
    directions have arbitrary sign, e.g. PCA)."""
    a, b = unit_rows(d1), unit_rows(d2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dictionaries live in different spaces: d={a.shape[1]} vs {b.shape[1]}")
    if min(len(a), len(b)) == 0:
        raise ValueError("canonicity needs two non-empty dictionaries")
    cos = a @ b.T  # (m₁, m₂)
    if not signed:
        cos = np.abs(cos)
    rows, cols = linear_sum_assignment(cos, maximize=True)
    return float(cos[rows, cols].mean())


def fvu(x: np.ndarray, recon: np.ndarray) -> float:
    """Σ‖x − x̂‖² / Σ‖x − x̄‖² over rows of ``x`` and ``recon`` ``(n, d)``."""
    a = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    r = np.asarray(recon, dtype=np.float64).reshape(len(recon), -1)
    den = float(((a - a.mean(0)) ** 2).sum())
    return float(((a - r) ** 2).sum() / den) if den > 0 else float("nan")
