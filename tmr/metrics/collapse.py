"""Neural collapse (Papyan, Han & Donoho 2020; paper 003) and He & Su separation.

With class means ``mu_c``, global mean ``mu_G``, ``C`` classes and ``N`` samples:

    Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T      within-class
    Sigma_B = (1/C) sum_c (mu_c - mu_G)(mu_c - mu_G)^T            between-class

All functions are unchanged when every sample is duplicated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tmr.metrics._common import as_features, check_labels, class_sums

__all__ = [
    "ClassStats",
    "class_stats",
    "nc1",
    "nc2",
    "rnc1",
    "separation_he_su",
]

# Relative cut-off of the pseudo-inverse Sigma_B^+: eigenvalues below
# PINV_RTOL * largest are treated as 0 (Sigma_B has rank <= C - 1).
PINV_RTOL = 1e-10
# NC2 forms the C x C Gram of class means; above this many classes (8 MB of
# cosines at 1024) the label is closer to an identity than to a class.
NC2_MAX_CLASSES = 1024


@dataclass(frozen=True)
class ClassStats:
    """Class means and scatter of a layer (float64)."""

    means: np.ndarray  # (C, d) class means mu_c
    counts: np.ndarray  # (C,) samples per class
    global_mean: np.ndarray  # (d,) mean of all samples mu_G
    resid: np.ndarray  # (n, d) h_i - mu_{y_i}
    n_samples: int

    @property
    def n_classes(self) -> int:
        return int(self.counts.shape[0])

    @property
    def sigma_w(self) -> np.ndarray:
        """(d, d) within-class covariance, 1/N normalised."""
        return self.resid.T @ self.resid / self.n_samples


def class_stats(h: object, y: object) -> ClassStats:
    """Class means, counts and the within-class covariance of ``h`` given labels ``y``."""
    arr = as_features(h)
    lab = check_labels(y, arr.shape[0])
    counts = np.bincount(lab).astype(np.float64)  # (C,)
    if counts.shape[0] < 2:
        raise ValueError("need at least 2 classes for collapse / separation metrics; "
                         f"got {counts.shape[0]}")
    sums = class_sums(arr, lab, counts.shape[0])  # (C, d)
    means = sums / counts[:, None]  # (C, d)
    resid = arr - means[lab]  # (n, d)
    return ClassStats(means=means, counts=counts, global_mean=arr.mean(axis=0),
                      resid=resid, n_samples=arr.shape[0])


def _weights(stats: ClassStats, weighting: str) -> np.ndarray:
    if weighting == "classes":
        return np.full(stats.n_classes, 1.0 / stats.n_classes)  # (C,)
    if weighting == "samples":
        return stats.counts / stats.n_samples  # (C,)
    raise ValueError(f"weighting={weighting!r} must be 'samples' or 'classes'")


def _between(stats: ClassStats, weighting: str) -> np.ndarray:
    """(d, d) between-class scatter sum_c w_c (mu_c - mu_G)(mu_c - mu_G)^T."""
    centred = stats.means - stats.global_mean  # (C, d)
    return (centred * _weights(stats, weighting)[:, None]).T @ centred


def _trace_within_pinv_between(stats: ClassStats, weighting: str) -> float:
    """Tr(Sigma_W S_b^+) without forming d x d matrices.

    ``S_b = A^T A`` with ``A = diag(sqrt w) (M - mu_G)`` ``(C, d)``; if ``A = U S V^T``
    then ``S_b^+ = V S^-2 V^T`` and ``Tr(Sigma_W S_b^+) = sum_j |R v_j|^2 / (N s_j^2)``
    with R the ``(n, d)`` residuals. Cost O(n d r), r = rank <= C - 1.
    """
    centred = stats.means - stats.global_mean  # (C, d)
    a = centred * np.sqrt(_weights(stats, weighting))[:, None]  # (C, d)
    _, sv, vt = np.linalg.svd(a, full_matrices=False)
    keep = sv**2 > PINV_RTOL * float(sv.max()) ** 2 if sv.size and sv.max() > 0 else sv > 0
    if not keep.any():
        return float("nan")
    proj = stats.resid @ vt[keep].T  # (n, r)
    return float(((proj**2).sum(axis=0) / stats.n_samples) @ (1.0 / sv[keep] ** 2))


def nc1(h: object, y: object) -> float:
    """NC1 = Tr(Sigma_W Sigma_B^+) / C (Papyan et al. 2020, Fig. 6).

    0 when every sample sits on its class mean; for isotropic within-class noise
    ``Sigma_W = s^2 I`` it is ``s^2 Tr(Sigma_B^+) / C``. Caveat: the
    pseudo-inverse makes NC1 blow up when class means nearly coincide (tiny
    eigenvalues of Sigma_B above the cut-off PINV_RTOL).
    """
    stats = class_stats(h, y)
    return _trace_within_pinv_between(stats, "classes") / stats.n_classes


def rnc1(h: object, y: object) -> float:
    """RNC1 = Tr Sigma_W / Tr Sigma_B: a pseudo-inverse-free collapse ratio (paper 003)."""
    stats = class_stats(h, y)
    centred = stats.means - stats.global_mean  # (C, d)
    tb = float((centred**2).sum()) / stats.n_classes  # Tr Sigma_B
    tw = float((stats.resid**2).sum()) / stats.n_samples  # Tr Sigma_W
    return tw / tb if tb > 0 else float("nan")


def nc2(h: object, y: object) -> dict[str, float]:
    """NC2: how far the centred class means ``m_c = mu_c - mu_G`` are from a simplex ETF.

    Returns (Papyan et al. 2020, Figs. 2-4):

    * ``norm_cv`` -- std/mean of ``|m_c|`` (equinorm: 0);
    * ``cos_std`` -- std of the off-diagonal cosines ``cos(m_c, m_c')`` (equiangular: 0);
    * ``cos_shift`` -- mean of ``|cos + 1/(C-1)|`` (maximal angle: 0);
    * ``etf_distance`` -- ``|G/|G|_F - E/|E|_F|_F`` with ``G = M M^T`` the Gram of the
      centred means and ``E = I - 11^T/C`` the Gram of a simplex ETF (0 iff ETF).

    A simplex ETF gives 0 for all four. Caveat: needs d >= C - 1 to be reachable.
    """
    stats = class_stats(h, y)
    m = stats.means - stats.global_mean  # (C, d)
    c = stats.n_classes
    if c > NC2_MAX_CLASSES:
        raise ValueError(f"{c} classes exceed NC2_MAX_CLASSES={NC2_MAX_CLASSES}; "
                         "use a coarser level or one position of it")
    norms = np.linalg.norm(m, axis=1)  # (C,)
    if np.any(norms == 0):
        raise ValueError("a class mean equals the global mean; NC2 cosines undefined")
    unit = m / norms[:, None]
    cos = (unit @ unit.T)[~np.eye(c, dtype=bool)]  # (C*(C-1),)
    gram = m @ m.T  # (C, C)
    etf = np.eye(c) - np.full((c, c), 1.0 / c)
    dist = np.linalg.norm(gram / np.linalg.norm(gram) - etf / np.linalg.norm(etf))
    return {
        "norm_cv": float(norms.std() / norms.mean()),
        "cos_std": float(cos.std()),
        "cos_shift": float(np.abs(cos + 1.0 / (c - 1)).mean()),
        "etf_distance": float(dist),
    }


def separation_he_su(h: object, y: object, *, weighting: str = "samples") -> float:
    """He & Su (2023) separation D = Tr(SS_w SS_b^+) (paper 000, eq. 7).

    ``SS_w = (1/N) sum_c sum_{i in c} (h_i - mu_c)(h_i - mu_c)^T`` and
    ``SS_b = sum_c w_c (mu_c - mu_G)(mu_c - mu_G)^T`` with ``w_c = n_c / N``
    (``weighting="samples"``, He & Su's definition) or ``w_c = 1/C``
    (``"classes"``, Papyan's Sigma_B). For balanced classes both agree and
    ``D = C * NC1``. In well-trained nets log D falls linearly with depth.
    """
    stats = class_stats(h, y)
    return _trace_within_pinv_between(stats, weighting)
