"""TwoNN intrinsic dimension (Facco, d'Errico, Rodriguez & Laio 2017; paper 000, eq. 4)."""

from __future__ import annotations

import numpy as np

from tmr.metrics._common import (
    as_features,
    first_of_distinct_rows,
    knn_distances,
    subsample_rows,
)

__all__ = ["twonn"]

# Facco et al. (2017) discard the 10% largest ratios mu, which are the most
# affected by density variations, before the linear fit.
TWONN_DISCARD = 0.1


def twonn(h: object, *, method: str = "fit", discard: float = TWONN_DISCARD,
          max_samples: int | None = None, rng: int | None = 0) -> float:
    """TwoNN intrinsic dimension of the distinct rows of ``h`` ``(n, d)``.

    For each point, ``mu = r2 / r1`` is the ratio of the distances to its second
    and first nearest neighbours; if the density is locally uniform,
    ``P(mu) = d mu^{-d-1}`` on ``[1, inf)`` so ``-log(1 - F(mu)) = d log mu``.

    * ``method="fit"`` (Facco et al.): least-squares slope through the origin of
      ``-log(1 - F_emp)`` against ``log mu``, after discarding the largest
      ``discard`` fraction of ratios;
    * ``method="mle"``: the maximum-likelihood ``(n - 1) / sum log mu``.

    Duplicated points would give r1 = 0, so rows are deduplicated first (the
    estimate is unchanged by duplicating samples). Caveats: underestimates above
    d ~ 10-20 with few points; sensitive to noise at the smallest scales. With
    ``max_samples``, the estimate uses that many distinct rows drawn with ``rng``
    (cost O(n^2 d) in the rows used above 16 dimensions; a subsample probes a
    coarser scale, which Facco et al. use on purpose to test scale dependence).
    """
    arr = as_features(h)
    arr = arr[first_of_distinct_rows(arr)]  # (n_distinct, d)
    sub = subsample_rows(arr.shape[0], max_samples, rng)
    if sub is not None:
        arr = arr[sub]
    n = arr.shape[0]
    if n < 3:
        raise ValueError(f"TwoNN needs at least 3 distinct points; got {n}")
    dist = knn_distances(arr, 2)  # (n, 2)
    mu = np.sort(dist[:, 1] / dist[:, 0])  # (n,)
    log_mu = np.log(mu)
    if method == "mle":
        return float((n - 1) / log_mu.sum())
    if method != "fit":
        raise ValueError(f"method={method!r} must be 'fit' or 'mle'")
    if not 0 <= discard < 1:
        raise ValueError(f"discard={discard} must be in [0, 1)")
    n_keep = min(max(int(np.floor(n * (1.0 - discard))), 2), n - 1)  # F_emp < 1
    f_emp = np.arange(1, n + 1) / n  # (n,) empirical CDF at the sorted mu
    xs, ys = log_mu[:n_keep], -np.log(1.0 - f_emp[:n_keep])
    return float((xs @ ys) / (xs @ xs))
