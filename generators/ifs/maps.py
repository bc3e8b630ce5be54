"""Affine maps of iterated function systems: classic systems, random draws, checks.

An IFS is ``K`` maps ``w_i(x) = A_i x + b_i`` with probabilities ``p_i``; it is
contractive when every ``σ_max(A_i) < 1`` (Hutchinson 1981), and then has a unique
attractor. Arrays here are ``linear`` (K, d, d), ``offset`` (K, d), ``probs`` (K,).
See ``shared/docs/background.md`` §2.4.

Random systems use the σ-factor parameterisation of Anderson & Farrell,
"Improving fractal pre-training", WACV 2022: in 2-D each map is
``A = R_θ diag(σ1, σ2) R_φ D`` with random rotations ``R``, a random reflection
``D = diag(±1, ±1)`` and singular values ``1 > σ1 >= σ2 >= 0`` constrained by the
σ-factor ``α = Σ_i (σ_i1 + 2 σ_i2)``, drawn uniformly in ``[(5+K)/2, (6+K)/2]``
(their recommended range). In ``d`` dimensions we use ``A = U diag(σ) V`` with
Haar-random orthogonal ``U, V`` and ``α = Σ_i Σ_j j σ_ij``, the range scaled by
``d(d+1)/6`` (equal to 1 at ``d = 2``): our extension, not in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: largest singular value a random or jittered map may have: strictly below 1 so
#: that depth ``D`` shrinks the attractor by at least ``0.99**D``.
MAX_SINGULAR = 0.99
#: attempts to redraw a jittered map that stopped being contractive
MAX_JITTER_TRIES = 100

_S3 = math.sqrt(3.0)


def _rot(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _similitudes(ratio: float, offsets: Sequence[Sequence[float]],
                 angles: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    k = len(offsets)
    angles = [0.0] * k if angles is None else angles
    linear = np.stack([ratio * _rot(a) for a in angles])  # (K, 2, 2)
    return linear, np.asarray(offsets, dtype=np.float64)  # (K, 2)


def _classic(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """``(linear, offset, probs, box)`` of a named system; ``box`` (2, d) = (lo, hi)
    is the unit square where pixel edges then fall on the joints between pieces
    (Sierpinski, carpet, Cantor), else None (computed by :func:`attractor_box`)."""
    unit = np.array([[0.0, 0.0], [1.0, 1.0]])
    if name == "sierpinski":
        # right-angled gasket on the unit square: w_i(x) = x/2 + b_i
        lin, off = _similitudes(0.5, [(0, 0), (0.5, 0), (0, 0.5)])
        return lin, off, np.full(3, 1 / 3), unit
    if name == "carpet":
        cells = [(i / 3, j / 3) for j in range(3) for i in range(3) if (i, j) != (1, 1)]
        lin, off = _similitudes(1 / 3, cells)
        return lin, off, np.full(8, 1 / 8), unit
    if name == "cantor":
        # middle-thirds Cantor set in x on the line y = 1/2 (y -> y/3 + 1/3 fixes 1/2)
        lin, off = _similitudes(1 / 3, [(0, 1 / 3), (2 / 3, 1 / 3)])
        return lin, off, np.full(2, 0.5), unit
    if name == "koch":
        # Koch curve from (0,0) to (1,0): four similitudes of ratio 1/3
        lin, off = _similitudes(1 / 3, [(0, 0), (1 / 3, 0), (0.5, _S3 / 6), (2 / 3, 0)],
                                [0.0, math.pi / 3, -math.pi / 3, 0.0])
        return lin, off, np.full(4, 0.25), None
    if name == "fern":
        # Barnsley, "Fractals Everywhere" (1988), Table III.3
        lin = np.array([[[0.0, 0.0], [0.0, 0.16]], [[0.85, 0.04], [-0.04, 0.85]],
                        [[0.2, -0.26], [0.23, 0.22]], [[-0.15, 0.28], [0.26, 0.24]]])
        off = np.array([[0.0, 0.0], [0.0, 1.6], [0.0, 1.6], [0.0, 0.44]])
        return lin, off, np.array([0.01, 0.85, 0.07, 0.07]), None
    if name == "dragon":
        # Heighway dragon: two similitudes of ratio 1/sqrt(2)
        r = 1 / math.sqrt(2.0)
        lin, off = _similitudes(r, [(0, 0), (1, 0)], [math.pi / 4, 3 * math.pi / 4])
        return lin, off, np.full(2, 0.5), None
    raise ValueError(f"system={name!r} is unknown; choose one of {sorted(CLASSIC_DIMENSIONS)}")


#: similarity (= Hausdorff, open set condition) dimension of each classic system;
#: the fern is not a similitude system (None). Dragon: log 2 / log √2 = 2.
CLASSIC_DIMENSIONS: dict[str, float | None] = {
    "sierpinski": math.log(3) / math.log(2),
    "carpet": math.log(8) / math.log(3),
    "cantor": math.log(2) / math.log(3),
    "koch": math.log(4) / math.log(3),
    "fern": None,
    "dragon": 2.0,
}


def classic_system(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The named classic system: ``linear`` (K, 2, 2), ``offset`` (K, 2),
    ``probs`` (K,), ``box`` (2, 2) = unit square (lo, hi) or None."""
    if not isinstance(name, str):
        raise TypeError(f"system={name!r} must be a string such as 'sierpinski'")
    return _classic(name.lower())


def spectral_norms(linear: np.ndarray) -> np.ndarray:
    """``σ_max(A_i)`` for ``linear`` (..., d, d) -> (...)."""
    return np.linalg.norm(linear, ord=2, axis=(-2, -1))


def check_maps(linear: np.ndarray, offset: np.ndarray, probs: np.ndarray) -> None:
    """Raise ``ValueError`` unless the maps are finite and strictly contractive and
    ``probs`` is a probability vector of the right length."""
    k, d = linear.shape[0], linear.shape[-1]
    if linear.shape != (k, d, d) or offset.shape != (k, d) or probs.shape != (k,):
        raise ValueError(f"maps have inconsistent shapes: linear {linear.shape}, offset "
                         f"{offset.shape}, probabilities {probs.shape}; expected (K, d, d), "
                         "(K, d), (K,)")
    if not (np.all(np.isfinite(linear)) and np.all(np.isfinite(offset))):
        raise ValueError("maps contain NaN or infinite coefficients")
    norms = spectral_norms(linear)
    if np.any(norms >= 1.0):
        i = int(np.argmax(norms))
        raise ValueError(f"map {i} is not contractive: σ_max(A_{i}) = {norms[i]:.6g} >= 1 "
                         f"(A_{i} = {linear[i].tolist()}); scale it down so every map shrinks")
    if np.any(~np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError(f"probabilities {probs.tolist()} must be finite and non-negative")
    if abs(probs.sum() - 1.0) > 1e-9:
        raise ValueError(f"probabilities {probs.tolist()} sum to {probs.sum():.12g}, not 1; "
                         "normalise them")


def parse_maps(maps: Sequence[Sequence[float]], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """User maps, one row ``[A (row-major, d*d numbers), b (d numbers)]`` per map,
    -> ``linear`` (K, d, d), ``offset`` (K, d)."""
    try:
        rows = np.asarray(maps, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"maps={maps!r} must be a list of equal-length number lists") from None
    width = dim * dim + dim
    if rows.ndim != 2 or rows.shape[1] != width or rows.shape[0] < 1:
        raise ValueError(f"maps has shape {rows.shape}; with dim={dim} each map is one row of "
                         f"{width} numbers: the {dim}x{dim} matrix row by row, then the offset")
    return rows[:, :dim * dim].reshape(-1, dim, dim), rows[:, dim * dim:]


def map_probabilities(linear: np.ndarray, rule: str | Sequence[float]) -> np.ndarray:
    """``"det"``: ``p_i ∝ |det A_i|`` (FractalDB, Kataoka et al. 2020);
    ``"uniform"``: ``1/K``; or an explicit vector (validated by :func:`check_maps`)."""
    k = linear.shape[0]
    if isinstance(rule, str):
        if rule == "uniform":
            return np.full(k, 1.0 / k)
        if rule == "det":
            det = np.abs(np.linalg.det(linear))  # (K,)
            if det.sum() <= 0:
                raise ValueError("every map has determinant 0, so probabilities ∝ |det A_i| "
                                 "are undefined; use probabilities='uniform'")
            return det / det.sum()
        raise ValueError(f"probabilities={rule!r} must be 'det', 'uniform' or a list of K "
                         "numbers summing to 1")
    return np.asarray(rule, dtype=np.float64)


def sigma_factor_range(n_maps: int, dim: int = 2) -> tuple[float, float]:
    """Anderson & Farrell's range ``[(5+K)/2, (6+K)/2]``, scaled by ``d(d+1)/6``."""
    scale = dim * (dim + 1) / 6
    return (5 + n_maps) / 2 * scale, (6 + n_maps) / 2 * scale


def _singular_values(gen: np.random.Generator, n_maps: int, dim: int,
                     alpha: float) -> np.ndarray:
    """Singular values (K, d), each row non-increasing in ``[0, MAX_SINGULAR]``, with
    ``Σ_i Σ_j j σ_ij = alpha``: each value uniform on the interval that keeps the
    remaining budget feasible, drawn in a random map order."""
    weights = np.arange(1, dim + 1, dtype=np.float64)  # (d,)
    row_max = MAX_SINGULAR * weights.sum()
    out = np.zeros((n_maps, dim))
    budget = alpha
    for i in range(n_maps):
        rest_max = row_max * (n_maps - i - 1)  # what later maps can still absorb
        cap = MAX_SINGULAR
        for j in range(dim):
            tail = weights[j + 1:].sum()  # later columns of this row are <= this value
            lo = max(0.0, (budget - rest_max) / (weights[j] + tail))
            hi = min(cap, budget / weights[j])
            if j == dim - 1 and i == n_maps - 1:
                v = min(max(budget / weights[j], 0.0), cap)
            else:
                v = gen.uniform(lo, max(lo, hi))
            out[i, j] = v
            budget -= weights[j] * v
            cap = v
    return out[gen.permutation(n_maps)]


def random_system(gen: np.random.Generator, n_maps: int, dim: int,
                  sigma: float | None) -> tuple[np.ndarray, np.ndarray]:
    """One σ-factor system: ``linear`` (K, d, d), ``offset`` (K, d) with offsets
    uniform in ``[-1, 1]^d`` (Anderson & Farrell 2022, §3)."""
    lo, hi = sigma_factor_range(n_maps, dim)
    alpha = gen.uniform(lo, hi) if sigma is None else float(sigma)
    sv = _singular_values(gen, n_maps, dim, alpha)  # (K, d)
    if dim == 2:
        th, ph = gen.uniform(0, 2 * np.pi, size=(2, n_maps))
        refl = gen.choice([-1.0, 1.0], size=(n_maps, 2))
        linear = np.stack([_rot(th[i]) @ np.diag(sv[i]) @ _rot(ph[i]) @ np.diag(refl[i])
                           for i in range(n_maps)])
    elif dim == 1:
        linear = (sv * gen.choice([-1.0, 1.0], size=(n_maps, 1)))[:, :, None]
    else:
        from scipy import stats  # imported here: scipy.stats costs 0.3 s at import

        u = stats.ortho_group.rvs(dim, size=n_maps, random_state=gen).reshape(n_maps, dim, dim)
        v = stats.ortho_group.rvs(dim, size=n_maps, random_state=gen).reshape(n_maps, dim, dim)
        linear = u @ (sv[:, :, None] * v)
    offset = gen.uniform(-1.0, 1.0, size=(n_maps, dim))
    return linear, offset


def jitter_system(gen: np.random.Generator, linear: np.ndarray, offset: np.ndarray,
                  scale: float) -> tuple[np.ndarray, np.ndarray]:
    """A perturbed instance: every coefficient plus ``N(0, scale²)`` noise; a map
    whose ``σ_max`` reaches ``MAX_SINGULAR`` is redrawn (contractivity re-checked)."""
    lin = linear.copy()
    off = offset + scale * gen.standard_normal(offset.shape)
    for i in range(len(lin)):
        for _ in range(MAX_JITTER_TRIES):
            cand = linear[i] + scale * gen.standard_normal(linear[i].shape)
            if spectral_norms(cand) < MAX_SINGULAR:
                lin[i] = cand
                break
        else:
            raise ValueError(f"jitter={scale} makes map {i} non-contractive in "
                             f"{MAX_JITTER_TRIES} tries; lower jitter")
    return lin, off


def similarity_dimension(ratios: Sequence[float] | np.ndarray) -> float:
    """Moran's equation: the ``s`` with ``Σ_i r_i^s = 1`` (Moran 1946; Hutchinson
    1981), the Hausdorff dimension of a similitude IFS with the open set condition."""
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or len(r) < 1 or np.any(r <= 0) or np.any(r >= 1):
        raise ValueError(f"ratios={r.tolist()} must be numbers in (0, 1)")
    if len(r) == 1:
        return 0.0
    from scipy import optimize  # imported on use, like scipy.stats above

    return float(optimize.brentq(lambda s: np.sum(r**s) - 1.0, 0.0, 64.0, xtol=1e-14))


def box_counting_dimension(points: np.ndarray, box: np.ndarray, *, min_level: float = 3,
                           max_level: float = 9, per_octave: int = 4, n_offsets: int = 8,
                           base: float = 2.0, seed: int = 0) -> float:
    """Box-counting dimension: least-squares slope of ``log N(ε)`` against
    ``log 1/ε`` (Falconer, "Fractal Geometry", §3.1), ``N(ε)`` the number of grid
    boxes of side ``ε = side · base^-k`` holding a point of ``points`` (n, d), for
    ``k`` from ``min_level`` to ``max_level`` in steps of ``1/per_octave``, averaged
    over ``n_offsets`` grid shifts (the first unshifted, the others uniform in
    ``[0, ε)^d`` from ``seed``): the shifts and fractional octaves average out the
    lacunarity oscillation of a fixed dyadic grid (0.04 on the Cantor set). With
    ``base = 1/r`` for a self-similar set of ratio ``r`` on an aligned box, one
    unshifted grid gives ``N(ε) = K^k`` exactly (the natural scales).
    The points should resolve the smallest box (cylinders below ``side · 2^-max_level``).
    """
    points = np.asarray(points, dtype=np.float64)
    d = points.shape[1]
    side = float(np.max(box[1] - box[0]))
    u = (points - box[0]) / side  # (n, d), mostly in [0, 1]
    ks = np.arange(min_level, max_level + 1e-9, 1 / per_octave)
    gen = np.random.default_rng(seed)
    counts = np.empty(len(ks))
    for i, k in enumerate(ks):
        m = float(base)**k
        total = 0
        for o in range(n_offsets):
            # unshifted: + 1e-9 so points on a box edge up to rounding (x = 2/3
            # times 3^k) fall in the upper box, as they do in exact arithmetic
            shift = gen.random(d) if o else np.full(d, 1e-9)
            cells = np.floor(u * m + shift).astype(np.int64)  # (n, d)
            cells -= cells.min(axis=0)
            dims = tuple(int(v) + 1 for v in cells.max(axis=0))
            flat = np.ravel_multi_index(tuple(cells.T), dims)
            occupied = np.zeros(int(np.prod(dims)), dtype=bool)
            occupied[flat] = True
            total += int(occupied.sum())
        counts[i] = total / n_offsets
    return float(np.polyfit(ks * math.log(base), np.log(counts), 1)[0])

def fixed_points(linear: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Fixed point of each map, ``(I - A_i)^-1 b_i``: (K, d). Each lies on the attractor."""
    eye = np.eye(linear.shape[-1])
    return np.linalg.solve(eye - linear, offset[..., None])[..., 0]


#: relative margin added around a numerically computed attractor box
BOX_MARGIN = 0.02
_N_DIRECTIONS = 128


def attractor_box(linear: np.ndarray, offset: np.ndarray, max_iter: int = 400) -> np.ndarray:
    """A square ``(lo, hi)`` (2, d) around the attractor.

    Points of the attractor are grown from the maps' fixed points by
    ``S <- S ∪ ∪_i w_i(S)``, keeping only the extreme points along a fixed set of
    directions (so ``S`` stays small), until the bounding box stops growing; the
    box is then made square (equal sides, centred) and padded by ``BOX_MARGIN``.
    Points outside it are clipped to the border pixels when rendering.
    """
    d = linear.shape[-1]
    dirs = np.random.default_rng(0).standard_normal((_N_DIRECTIONS, d))
    dirs = np.concatenate([np.eye(d), -np.eye(d), dirs])  # (M, d)
    pts = fixed_points(linear, offset)  # (m, d)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    for _ in range(max_iter):
        new = np.einsum("kij,nj->kni", linear, pts) + offset[:, None, :]  # (K, m, d)
        cand = np.concatenate([pts, new.reshape(-1, d)])
        pts = cand[np.unique(np.argmax(cand @ dirs.T, axis=0))]
        nlo, nhi = pts.min(axis=0), pts.max(axis=0)
        done = np.allclose(nlo, lo, rtol=0, atol=1e-10) and np.allclose(nhi, hi, rtol=0,
                                                                         atol=1e-10)
        lo, hi = nlo, nhi
        if done:
            break
    side = float(np.max(hi - lo))
    side = side * (1 + 2 * BOX_MARGIN) if side > 0 else 1.0
    centre = (lo + hi) / 2
    return np.stack([centre - side / 2, centre + side / 2])
