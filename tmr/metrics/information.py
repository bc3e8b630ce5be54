"""Mutual information between a layer and a discrete latent or the input.

All values are in nats. Four estimators, each with its own caveats:

* :func:`knn_mi_discrete` -- I(H;Y) for continuous H and discrete Y by k-NN
  entropy differences (Kraskov, Stoegbauer & Grassberger 2004; Ross 2014).
* :func:`ksg_mi` -- I(A;B) for two continuous variables (Kraskov et al. 2004,
  algorithm 1), e.g. between two layers or a layer and a continuous latent.
* :func:`probe_mi_bound` -- the variational lower bound I(H;Y) >= H(Y) - CE of a
  probe's held-out cross-entropy (e.g. Pimentel et al. 2020).
* :func:`binned_mi` -- the information-plane binning estimator (Shwartz-Ziv &
  Tishby 2017, paper 002): plug-in MI of the per-unit binned layer.
* :func:`input_mi_discrete` -- I(H;X) for discrete inputs and a deterministic
  layer, which is the plug-in entropy of the layer's distinct values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma

from tmr.metrics._common import (
    as_features,
    check_labels,
    entropy_of_ids,
    first_of_distinct_rows,
    row_ids,
    sq_distance_blocks,
    subsample_rows,
)

__all__ = [
    "binned_mi",
    "binned_mi_input",
    "input_mi_discrete",
    "knn_mi_discrete",
    "knn_mi_discrete_levels",
    "ksg_mi",
    "plugin_mi",
    "probe_mi_bound",
]


def plugin_mi(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in mutual information I(A;B) = H(A) + H(B) - H(A,B) of two id arrays ``(n,)``.

    Biased upward by about (K_A K_B - K_A - K_B + 1) / (2n) nats (Miller 1955)
    when the joint alphabet is not well sampled.
    """
    a = np.asarray(a, dtype=np.int64).reshape(-1)
    b = np.asarray(b, dtype=np.int64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"id arrays differ in length: {a.shape[0]} vs {b.shape[0]}")
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = ai.astype(np.int64) * (int(bi.max()) + 1) + bi  # (n,)
    _, ji = np.unique(joint, return_inverse=True)
    return entropy_of_ids(ai) + entropy_of_ids(bi) - entropy_of_ids(ji.reshape(-1))


def knn_mi_discrete(h: object, y: object, *, k: int = 3, dedup: bool = True,
                    max_samples: int | None = None, rng: int | None = 0) -> float:
    """I(H;Y) for continuous H and discrete Y by k-NN (Ross 2014, eq. 2).

    ``I = psi(N) - <psi(N_y)> + <psi(k)> - <psi(m)>``: for each point, ``d`` is the
    distance to its k-th nearest neighbour among the ``N_y`` points of its own
    class and ``m`` the number of points of any class within distance ``d``
    (including that k-th neighbour); psi is the digamma function. This is the
    Kraskov-Stoegbauer-Grassberger construction (entropy differences of the
    Kozachenko-Leonenko estimator with a shared radius) for a discrete partner.

    Caveats: biased towards 0 when I is large relative to log k and in high
    dimension (the k-NN radius then reflects the ambient, not the intrinsic,
    geometry; Gao et al. 2015); classes with a single point are dropped (as in
    scikit-learn) and ``k`` is lowered to ``N_y - 1`` for small classes; if every
    class is a singleton the result is NaN. The value may be slightly negative
    for independent variables. Repeated (h, y) rows would give zero radii, so
    with ``dedup`` they are removed first (the estimator then sees distinct
    points, and duplicating the data leaves it unchanged). Cost O(n^2 d).

    Args:
        h: ``(n_samples, d)`` activations.
        y: ``(n_samples,)`` labels or a level ``(n_samples, ...)`` (rows are values).
        k: neighbours (Kraskov et al. recommend 2-4).
        dedup: drop repeated (h, y) rows first.
        max_samples: estimate on this many rows drawn with ``rng`` (None: all);
            the cost is quadratic in the rows used.
    """
    return knn_mi_discrete_levels(h, [y], k=k, dedup=dedup, max_samples=max_samples,
                                  rng=rng)[0]


def knn_mi_discrete_levels(h: object, ys: Sequence[object], *, k: int = 3,
                           dedup: bool = True, max_samples: int | None = None,
                           rng: int | None = 0) -> list[float]:
    """:func:`knn_mi_discrete` for several label arrays, sharing one pass of distances.

    Deduplication (if asked) is on rows of (h, all labels) jointly, after the
    optional subsample of ``max_samples`` rows.
    """
    arr = as_features(h)
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k={k!r} must be a positive integer (typically 3)")
    k = int(k)
    labels = [check_labels(y, arr.shape[0], f"ys[{i}]") for i, y in enumerate(ys)]
    sub = subsample_rows(arr.shape[0], max_samples, rng)
    if sub is not None:
        arr = arr[sub]
        labels = [lab[sub] for lab in labels]
    if not labels:
        return []
    if dedup:
        joint = np.concatenate([arr, np.stack(labels, axis=1).astype(np.float64)], axis=1)
        first = first_of_distinct_rows(joint)
        arr = arr[first]
        labels = [lab[first] for lab in labels]
    n = arr.shape[0]
    if n < 3:
        return [float("nan")] * len(labels)

    prepared = []
    for lab in labels:
        counts = np.bincount(lab)
        n_y = counts[lab]  # (n,) class size of each point
        keep = n_y >= 2
        k_i = np.minimum(k, n_y - 1)  # (n,)
        order = np.argsort(lab, kind="stable")  # (n,) members of each class, ascending
        starts = np.concatenate([[0], np.cumsum(counts)])  # (C+1,)
        prepared.append((lab, n_y, keep, k_i, np.zeros(n, dtype=np.int64), order, starts))

    for rows, d2 in sq_distance_blocks(arr):
        for lab, _, keep, _, m, order, starts in prepared:
            r2 = np.full(rows.stop - rows.start, np.inf)  # (b,) squared k-NN radius
            rows_lab = lab[rows]
            for c in np.unique(rows_lab):
                members = order[starts[c]:starts[c + 1]]  # (n_c,) ascending indices
                kc = min(k, members.shape[0] - 1)
                if kc < 1:
                    continue  # singleton class: dropped below
                local = np.nonzero(rows_lab == c)[0]  # (b_c,)
                sub = d2[np.ix_(local, members)]  # (b_c, n_c) within-class distances
                sub[np.arange(local.shape[0]),
                    np.searchsorted(members, rows.start + local)] = np.inf  # not itself
                r2[local] = np.partition(sub, kc - 1, axis=1)[:, kc - 1]
            inside = d2 <= r2[:, None]  # (b, n)
            m[rows] = inside.sum(axis=1) - 1  # minus the point itself
            if not keep.all():
                m[rows] -= inside[:, ~keep].sum(axis=1)  # singletons are not in the data

    out = []
    for _, n_y, keep, k_i, m, _, _ in prepared:
        if not keep.any():
            out.append(float("nan"))
            continue
        n_keep = int(keep.sum())
        # class sizes among kept points are unchanged: singletons form their own classes
        mi = (digamma(n_keep) - digamma(n_y[keep]).mean()
              + digamma(k_i[keep]).mean() - digamma(np.maximum(m[keep], 1)).mean())
        out.append(float(mi))
    return out


def ksg_mi(a: object, b: object, *, k: int = 3) -> float:
    """I(A;B) for continuous A, B by the KSG estimator (Kraskov et al. 2004, eq. 8).

    ``I = psi(k) + psi(N) - <psi(n_a + 1) + psi(n_b + 1)>`` where ``eps_i`` is the
    max-norm distance to the k-th neighbour in the joint space and ``n_a``,
    ``n_b`` count points strictly closer than ``eps_i`` in each marginal space.
    Exact in expectation for independent variables; for a Gaussian pair with
    correlation rho, ``I = -1/2 log(1 - rho^2)`` per independent pair. Caveats:
    k-d trees make it fast only in low dimension (<~ 10); biased towards 0 for
    large I; needs distinct points (jitter or deduplicate ties).
    """
    fa = as_features(a, "a")
    fb = as_features(b, "b")
    if fa.shape[0] != fb.shape[0]:
        raise ValueError(f"a has {fa.shape[0]} samples, b has {fb.shape[0]}; align them")
    n = fa.shape[0]
    if isinstance(k, bool) or int(k) != k or not 1 <= k < n:
        raise ValueError(f"k={k!r} must be an integer in [1, n-1={n - 1}]")
    joint = np.concatenate([fa, fb], axis=1)  # (n, da + db)
    eps, _ = cKDTree(joint).query(joint, k=int(k) + 1, p=np.inf)  # (n, k+1)
    radius = np.nextafter(eps[:, -1], 0.0)  # strictly closer than the k-th neighbour
    n_a = cKDTree(fa).query_ball_point(fa, radius, p=np.inf, return_length=True) - 1
    n_b = cKDTree(fb).query_ball_point(fb, radius, p=np.inf, return_length=True) - 1
    return float(digamma(k) + digamma(n) - (digamma(n_a + 1) + digamma(n_b + 1)).mean())


def probe_mi_bound(y: object, *, log_probs: object = None, ce: float | None = None) -> float:
    """Probe lower bound I(H;Y) >= H(Y) - CE (nats).

    ``CE = -(1/n) sum_i log q(y_i | h_i)`` is a probe's held-out cross-entropy; for any
    probe q, ``H(Y|H) <= CE`` so ``H(Y) - CE`` bounds I(H;Y) from below (the
    variational bound; Pimentel et al. 2020, Barber & Agakov 2003). H(Y) is the
    plug-in entropy of the held-out labels ``y``. Caveat: tight only if the probe
    family contains the Bayes classifier; an over-fitted probe can make it negative.

    Args:
        y: ``(n,)`` held-out labels (ids ``0..C-1`` matching ``log_probs`` columns).
        log_probs: ``(n, C)`` probe log-probabilities on the held-out set; or
        ce: the held-out cross-entropy in nats, if already computed.
    """
    ids = np.asarray(y).reshape(-1)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"y must hold integer class ids; got dtype {ids.dtype}")
    if (log_probs is None) == (ce is None):
        raise ValueError("give exactly one of log_probs=(n, C) array or ce=float")
    if log_probs is not None:
        lp = np.asarray(log_probs, dtype=np.float64)
        if lp.ndim != 2 or lp.shape[0] != ids.shape[0]:
            raise ValueError(f"log_probs must be (n={ids.shape[0]}, C); got shape {lp.shape}")
        if ids.min() < 0 or ids.max() >= lp.shape[1]:
            raise ValueError(f"labels must be in [0, C={lp.shape[1]}); got "
                             f"[{ids.min()}, {ids.max()}]")
        ce = float(-lp[np.arange(ids.shape[0]), ids].mean())
    _, inv = np.unique(ids, return_inverse=True)
    return entropy_of_ids(inv.reshape(-1)) - float(ce)  # type: ignore[arg-type]


def _bin_ids(h: np.ndarray, n_bins: int, value_range: tuple[float, float] | None) -> np.ndarray:
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins={n_bins!r} must be a positive integer (paper 002 uses 30)")
    lo, hi = (float(h.min()), float(h.max())) if value_range is None else value_range
    if not hi > lo:
        hi = lo + 1.0  # constant layer: a single bin
    # equal-width bins by arithmetic (np.digitize's search is ~20x slower); values
    # outside value_range fall in the end bins
    scaled = (h - lo) * (int(n_bins) / (hi - lo))  # (n, d)
    codes = np.clip(np.floor(scaled), 0, int(n_bins) - 1)  # (n, d) in 0..n_bins-1
    small = np.uint8 if n_bins <= 256 else np.uint16 if n_bins <= 65536 else np.int64
    return row_ids(codes.astype(small))


def binned_mi(h: object, y: object, *, n_bins: int,
              value_range: tuple[float, float] | None = None) -> float:
    """Information-plane binning estimate of I(T;Y) (Shwartz-Ziv & Tishby 2017).

    Each unit of ``h`` is cut into ``n_bins`` equal-width bins over
    ``value_range`` (default: the layer's min..max, shared by all units); T is the
    joint bin pattern of a sample and ``I(T;Y) = H(T) + H(Y) - H(T,Y)`` by
    plug-in. Caveat: this is a property of the binning, not of H (Saxe et al.
    2018): with fine bins every distinct sample is its own T and I(T;Y) -> H(Y);
    report ``n_bins`` with every value. Unchanged by duplicating every sample.
    """
    arr = as_features(h)
    lab = check_labels(y, arr.shape[0])
    return plugin_mi(_bin_ids(arr, n_bins, value_range), lab)


def binned_mi_input(h: object, x: object, *, n_bins: int,
                    value_range: tuple[float, float] | None = None) -> float:
    """Binning estimate of I(T;X) for discrete inputs ``x`` ``(n_samples, ...)``.

    As :func:`binned_mi` with X the identity of each distinct input row. For a
    deterministic layer H(T|X) = 0, so this is H(T); with fine bins and distinct,
    equally frequent inputs it is log(N_distinct) (paper 002's saturation).
    """
    arr = as_features(h)
    xa = np.asarray(x)
    if xa.shape[0] != arr.shape[0]:
        raise ValueError(f"x has {xa.shape[0]} samples but h has {arr.shape[0]}")
    return plugin_mi(_bin_ids(arr, n_bins, value_range), row_ids(xa))


def input_mi_discrete(h: object, x: object, *, decimals: int | None = None) -> float:
    """I(H;X) for discrete inputs: plug-in MI of the layer's distinct values and X.

    For a deterministic layer ``I(H;X) = H(H)``; it equals log(#distinct inputs)
    when the layer is injective on distinct, equally frequent inputs, and falls
    as the layer merges inputs. Values of ``h`` are compared exactly, or after
    rounding to ``decimals`` (merging inputs closer than ~10**-decimals). This is
    the entropy of an empirical distribution: it cannot exceed log n.
    """
    arr = as_features(h)
    if decimals is not None:
        arr = np.round(arr, decimals) + 0.0  # + 0.0 maps -0.0 to 0.0
    xa = np.asarray(x)
    if xa.shape[0] != arr.shape[0]:
        raise ValueError(f"x has {xa.shape[0]} samples but h has {arr.shape[0]}")
    return plugin_mi(row_ids(arr), row_ids(xa))
