"""Phenomenological RG on activations (Meshulam, Gauthier, Brody, Schwab & Bialek, PRL 2019).

Start from units z-scored over samples. One step: compute the correlation matrix of the
current variables, greedily pair the most correlated pair, then the most correlated pair
among the remaining ones, and so on; each pair is replaced by its sum. After k steps the
variables are sums over clusters of K = 2^k original units. The mean within-cluster
variance scales as Var(K) ∝ K^α̃: α̃ = 1 for independent units (variances add),
α̃ = 2 for identical units (the sum is K times one unit), in between for correlated
populations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tmr.rg.base import CoarseGrained


def greedy_pairs(corr: np.ndarray) -> np.ndarray:
    """Disjoint pairs ``(m // 2, 2)`` chosen greedily by decreasing correlation.

    With an odd number of variables the one left over is dropped.
    """
    m = corr.shape[0]
    iu, ju = np.triu_indices(m, k=1)
    vals = corr[iu, ju]  # (m(m-1)/2,)
    order = np.argsort(-vals, kind="stable")
    used = np.zeros(m, dtype=bool)
    pairs = []
    for t in order:
        i, j = iu[t], ju[t]
        if not used[i] and not used[j]:
            used[i] = used[j] = True
            pairs.append((i, j))
            if len(pairs) == m // 2:
                break
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _corr(x: np.ndarray) -> np.ndarray:
    """Pearson correlation of columns of ``(n, m)``; constant columns correlate as 0."""
    xc = x - x.mean(axis=0)
    sd = np.sqrt((xc ** 2).mean(axis=0))
    z = xc / np.where(sd > 0, sd, np.inf)
    c = z.T @ z / x.shape[0]  # (m, m)
    # nan-free even for zero-variance units; break exact ties deterministically by index
    return np.nan_to_num(c)


class PhenomenologicalScheme:
    """One Meshulam merge step on variables ``(n_samples, m)``; scale must be 2 (pairs)."""

    name = "phenomenological"

    def __call__(self, representation: np.ndarray, scale: float) -> CoarseGrained:
        if int(scale) != 2:
            raise ValueError(f"scale={scale}: phenomenological RG merges pairs; use 2 per step")
        x = np.asarray(representation, dtype=np.float64)  # (n, m)
        if x.ndim != 2 or x.shape[1] < 2:
            raise ValueError(f"expected (n_samples, m >= 2) variables, got shape {x.shape}")
        corr = _corr(x)
        pairs = greedy_pairs(corr)  # (m//2, 2)
        coarse = x[:, pairs[:, 0]] + x[:, pairs[:, 1]]  # (n, m//2)
        rel = corr[pairs[:, 0], pairs[:, 1]]  # (m//2,) within-pair correlation
        return CoarseGrained(coarse=coarse, modes=pairs, relevance=rel, scale=2.0,
                             scheme=self.name)


@dataclass(frozen=True)
class PhenomenologicalResult:
    """Cluster sizes K ``(s,)``, mean within-cluster variance ``(s,)``, α̃ and the clusters
    at the last step as original unit indices ``(m // K_max, K_max)``."""

    cluster_size: np.ndarray
    variance: np.ndarray
    alpha: float
    clusters: np.ndarray


def phenomenological_rg(h: np.ndarray, n_steps: int | None = None) -> PhenomenologicalResult:
    """Run ``n_steps`` pair merges on units ``(n_samples, d)``; fit Var(K) ∝ K^α̃.

    Units are z-scored first (zero-variance units are dropped). α̃ is the least-squares
    slope of log Var against log K over all steps, K = 1, 2, 4, ….
    """
    x = np.asarray(h, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected (n_samples, d) activations, got shape {x.shape}")
    sd = x.std(axis=0)
    keep = np.flatnonzero(sd > 0)
    if keep.size < 2:
        raise ValueError("fewer than two units vary: nothing to coarse-grain")
    z = (x[:, keep] - x[:, keep].mean(axis=0)) / sd[keep]  # (n, d')
    max_steps = int(np.floor(np.log2(keep.size)))
    n_steps = max_steps if n_steps is None else n_steps
    if not 1 <= n_steps <= max_steps:
        raise ValueError(f"n_steps={n_steps} must be in [1, {max_steps}] for {keep.size} units")
    clusters = keep[:, None]  # (m, 1) original unit indices
    sizes, variances = [1.0], [float(z.var(axis=0).mean())]
    scheme = PhenomenologicalScheme()
    cur = z
    for _ in range(n_steps):
        cg = scheme(cur, 2)
        pairs = cg.modes  # (m//2, 2)
        clusters = np.concatenate([clusters[pairs[:, 0]], clusters[pairs[:, 1]]], axis=1)
        cur = cg.coarse
        sizes.append(float(clusters.shape[1]))
        variances.append(float(cur.var(axis=0).mean()))
    k = np.array(sizes)
    v = np.array(variances)
    alpha = float(np.polyfit(np.log(k), np.log(v), 1)[0])
    return PhenomenologicalResult(cluster_size=k, variance=v, alpha=alpha, clusters=clusters)
