"""Representation similarity: unbiased linear CKA and RSA against the latent tree.

CKA (Kornblith et al. 2019) with the unbiased HSIC estimator (Song et al. 2012;
Nguyen, Raghu & Kornblith 2021): the biased form is far from 0 on independent
data when d is not << n. Linear kernels are never formed as n x n matrices: all
Gram statistics are computed in feature space, O(n d^2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.spatial.distance import pdist

from tmr.metrics._common import as_features, check_labels, class_sums

__all__ = ["cka_onehot", "linear_cka", "rsa_tree", "tree_distance"]

# Default number of points for RSA: 1,000 points give ~500k pairs, enough for a
# rank correlation to ~+-0.002 (1/sqrt(pairs)), while pdist and ranking stay fast.
RSA_MAX_POINTS = 1000


@dataclass(frozen=True)
class _Gram:
    """Statistics of a linear kernel K = F F^T needed by HSIC."""

    diag: np.ndarray  # (n,) K_ii
    row_sums: np.ndarray  # (n,) (K 1)_i
    self_fro2: float  # |K|_F^2 = |F^T F|_F^2


def _gram_dense(f: np.ndarray) -> _Gram:
    gram = f.T @ f  # (d, d)
    return _Gram(diag=np.einsum("ij,ij->i", f, f), row_sums=f @ f.sum(axis=0),
                 self_fro2=float((gram**2).sum()))


def _gram_onehot(lab: np.ndarray) -> _Gram:
    counts = np.bincount(lab).astype(np.float64)  # (C,)
    return _Gram(diag=np.ones(lab.shape[0]), row_sums=counts[lab],
                 self_fro2=float((counts**2).sum()))


def _hsic(k: _Gram, l: _Gram, cross_fro2: float, n: int, unbiased: bool) -> float:
    """HSIC from Gram statistics; ``cross_fro2 = tr(K L)`` (= |F^T G|_F^2 for linear kernels).

    Unbiased (Song et al. 2012, eq. 5), with K~, L~ the kernels with zero diagonal::

        [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))

    Biased: tr(K H L H) / (n-1)^2 with centring H = I - 11'/n.
    """
    if unbiased:
        if n < 4:
            raise ValueError(f"unbiased HSIC needs n >= 4 samples; got {n}")
        tr_kl = cross_fro2 - float(k.diag @ l.diag)
        k1 = k.row_sums - k.diag  # (n,) K~ 1
        l1 = l.row_sums - l.diag  # (n,) L~ 1
        val = (tr_kl + k1.sum() * l1.sum() / ((n - 1) * (n - 2))
               - 2.0 / (n - 2) * float(k1 @ l1))
        return val / (n * (n - 3))
    # tr(KHLH) = tr(KL) - 2/n 1'KL1 + (1'K1)(1'L1)/n^2
    val = (cross_fro2 - 2.0 / n * float(k.row_sums @ l.row_sums)
           + k.row_sums.sum() * l.row_sums.sum() / n**2)
    return val / (n - 1) ** 2


def _cka(hkl: float, hkk: float, hll: float) -> float:
    denom = hkk * hll
    return float(hkl / np.sqrt(denom)) if denom > 0 else float("nan")


def linear_cka(x: object, y: object, *, unbiased: bool = True) -> float:
    """Linear CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = X X^T, L = Y Y^T.

    ``x`` ``(n, d1)`` and ``y`` ``(n, d2)`` are two layers on the same samples
    (features are centred first). CKA(X, a X Q) = 1 for any scalar a != 0 and
    orthogonal Q; the unbiased form is ~0 (within ~1/n) for independent data.
    Caveat: the unbiased ratio can leave [0, 1] slightly by sampling noise, and is
    NaN if a self-HSIC is <= 0 (e.g. a constant layer).
    """
    fx = as_features(x, "x")
    fy = as_features(y, "y")
    if fx.shape[0] != fy.shape[0]:
        raise ValueError(f"x has {fx.shape[0]} samples, y has {fy.shape[0]}; align them")
    fx = fx - fx.mean(axis=0)
    fy = fy - fy.mean(axis=0)
    n = fx.shape[0]
    gx, gy = _gram_dense(fx), _gram_dense(fy)
    cross = float(((fx.T @ fy) ** 2).sum())
    return _cka(_hsic(gx, gy, cross, n, unbiased), _hsic(gx, gx, gx.self_fro2, n, unbiased),
                _hsic(gy, gy, gy.self_fro2, n, unbiased))


def cka_onehot(h: object, y: object, *, unbiased: bool = True) -> float:
    """Linear CKA between a layer ``h`` ``(n, d)`` and the one-hot encoding of labels ``y``.

    Same formula as :func:`linear_cka` with ``L_ij = [y_i == y_j]``; the one-hot
    matrix is never formed (``|H^T Y|_F^2`` = sum of squared class sums), so a level
    with ~n distinct values costs O(n d). ``y`` may be a level ``(n, ...)``.
    """
    f = as_features(h)
    lab = check_labels(y, f.shape[0])
    f = f - f.mean(axis=0)
    n = f.shape[0]
    sums = class_sums(f, lab, int(lab.max()) + 1)  # (C, d)
    gf, gl = _gram_dense(f), _gram_onehot(lab)
    cross = float((sums**2).sum())
    return _cka(_hsic(gf, gl, cross, n, unbiased), _hsic(gf, gf, gf.self_fro2, n, unbiased),
                _hsic(gl, gl, gl.self_fro2, n, unbiased))


def tree_distance(levels: Sequence[object]) -> np.ndarray:
    """Ultrametric tree distance of latent paths, condensed ``(n(n-1)/2,)`` like ``pdist``.

    ``levels`` are root/coarsest first, each ``(n, ...)``. For samples i, j the
    distance is ``L - p`` where ``p`` is the number of leading levels on which
    their values agree: 0 for identical paths, L when they differ at the root.
    """
    if len(levels) == 0:
        raise ValueError("levels is empty; pass sample.levels")
    n = np.asarray(levels[0]).shape[0]
    ids = [check_labels(lv, n, f"levels[{i}]") for i, lv in enumerate(levels)]
    iu, ju = np.triu_indices(n, k=1)  # pairs in pdist order
    still = np.ones(iu.shape[0], dtype=bool)
    prefix = np.zeros(iu.shape[0], dtype=np.int64)
    for lab in ids:
        still &= lab[iu] == lab[ju]
        prefix += still
    return (len(ids) - prefix).astype(np.float64)


def rsa_tree(h: object, levels: Sequence[object], *, method: str = "spearman",
             max_points: int = RSA_MAX_POINTS, rng: int | None = 0) -> float:
    """RSA: rank (or linear) correlation of layer distances with the latent tree distance.

    Correlates the Euclidean distances ``|h_i - h_j|`` with :func:`tree_distance`
    over all pairs of (at most ``max_points``, drawn with ``rng``) samples
    (Kriegeskorte et al. 2008). ``method="spearman"`` (default, invariant to any
    monotone distance transform) or ``"pearson"``. A layer that is the one-hot
    encoding of the latent path scores exactly 1. Caveat: the tree distance takes
    only L + 1 values, so ties are many; Spearman uses average ranks.
    """
    f = as_features(h)
    n = f.shape[0]
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method={method!r} must be 'spearman' or 'pearson'")
    idx = np.arange(n)
    if n > max_points:
        idx = np.sort(np.random.default_rng(rng).choice(n, size=max_points, replace=False))
    tree = tree_distance([np.asarray(lv)[idx] for lv in levels])  # (pairs,)
    rep = pdist(f[idx])  # (pairs,)
    if np.ptp(tree) == 0 or np.ptp(rep) == 0:
        return float("nan")
    if method == "spearman":
        return float(sps.spearmanr(rep, tree).statistic)
    return float(np.corrcoef(rep, tree)[0, 1])
