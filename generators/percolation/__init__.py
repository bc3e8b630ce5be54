"""Lattice percolation with nested cluster hierarchies across an occupation ladder.

See ``shared/docs/background.md`` §2.3. Each sample draws one uniform field ``u``
(one value per site for site percolation, per bond for bond percolation) and a
site/bond is open at ``p`` when ``u < p``. For a ladder ``p_1 < p_2 < … < p_K`` the
open sets are nested, so every cluster at ``p_j`` lies inside exactly one cluster
at ``p_{j+1}``: an exact hierarchy whose scale is the distance to criticality.

Levels are the cluster-id maps at each p, **coarsest (highest p) first**:
``levels[0]`` is at ``ps[-1]``, ``levels[K-1]`` at ``ps[0]``; ids are ``0`` for an
empty site (site percolation) and ``1..k`` in raster order of each cluster's first
site. ``aux["parent"][:, j, c]`` is the id at level ``j`` of cluster ``c`` of level
``j+1`` (0 for unused ``c``). The full Newman–Ziff merge tree of a sample is
:func:`merge_tree`. ``x`` is the occupation (uint8) at the p of level ``x_level``:
``(n, *shape)`` for site, ``(n, n_bond_directions, *shape)`` for bond percolation.
With ``random_x_level`` each sample picks its level uniformly (a p-bin task); the
choice is in ``aux["x_level"]`` and its p in ``aux["x_p"]`` (n,).

Ground truth in ``aux`` (``K`` levels, coarsest first): ``p``, ``p_minus_pc``,
``n_clusters``, ``largest_fraction`` (size of the largest cluster / number of sites)
of shape (n, K); ``spans`` (n, K, d): some cluster crosses from face 0 to face L-1
along axis k; with ``site_truth``, per site (n, K, *shape): ``cluster_size``,
``in_largest`` (ties: every cluster of the largest size) and ``in_spanning``.
Periodic clusters wrap; a periodic cluster "spans" when one of its free-boundary
parts crosses.

Randomness: sample ``i`` uses its own stream ``_rng.block_generator(ss, i)``, so
any chunking gives the same bytes and a larger draw has a smaller one as a prefix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from generators import _rng
from generators.base import HierarchicalSample
from generators.percolation import labels as pl
from generators.percolation.labels import MergeTree, labels_at

NAME = "percolation"

__all__ = ["EXPONENTS", "THRESHOLDS", "Config", "MergeTree", "World", "critical_ladder",
           "iter_chunks", "label", "labels_at", "make_world", "merge_tree", "sample",
           "threshold"]

#: (lattice, dim, kind) -> (p_c, source)
THRESHOLDS: dict[tuple[str, int, str], tuple[float, str]] = {
    ("square", 2, "site"): (0.59274621, "Newman & Ziff, PRL 85, 4104 (2000)"),
    ("square", 2, "bond"): (0.5, "Kesten, Commun. Math. Phys. 74, 41 (1980), exact"),
    ("triangular", 2, "site"): (0.5, "Sykes & Essam, J. Math. Phys. 5, 1117 (1964), exact"),
    ("triangular", 2, "bond"): (0.34729635533386,  # 2 sin(pi/18)
                                "Sykes & Essam, J. Math. Phys. 5, 1117 (1964), exact"),
    ("cubic", 3, "site"): (0.3116077, "Deng & Blöte, PRE 72, 016126 (2005)"),
    ("cubic", 3, "bond"): (0.2488118, "Wang, Zhou, Zhang, Garoni & Deng, PRE 87, 052107 (2013)"),
    ("hypercubic", 4, "site"): (0.196889, "Grassberger, PRE 67, 036101 (2003)"),
    ("hypercubic", 4, "bond"): (0.1601314, "Dammer & Hinrichsen, JSTAT P07011 (2004)"),
    ("hypercubic", 5, "site"): (0.140796, "Grassberger, PRE 67, 036101 (2003)"),
    ("hypercubic", 5, "bond"): (0.118172, "Grassberger, PRE 67, 036101 (2003)"),
}

#: dimension -> critical exponents {tau, d_f, nu, beta, gamma} and source. 2D exact
#: (den Nijs 1979; Nienhuis 1982); 3D–5D numerical (Stauffer & Aharony, Introduction
#: to Percolation Theory, 2nd ed. 1994, Table 2; tau = 1 + d/d_f); d >= 6 mean field.
EXPONENTS: dict[int, dict[str, float | str]] = {
    2: {"tau": 187 / 91, "d_f": 91 / 48, "nu": 4 / 3, "beta": 5 / 36, "gamma": 43 / 18,
        "source": "exact: den Nijs (1979), Nienhuis (1982)"},
    3: {"tau": 2.18906, "d_f": 2.5230, "nu": 0.8765, "beta": 0.4181, "gamma": 1.793,
        "source": "numerical: Ballesteros et al., J. Phys. A 32, 1 (1999); Stauffer & Aharony"},
    4: {"tau": 2.313, "d_f": 3.046, "nu": 0.6845, "beta": 0.657, "gamma": 1.422,
        "source": "numerical: Stauffer & Aharony (1994); Ballesteros et al. (1997)"},
    5: {"tau": 2.412, "d_f": 3.54, "nu": 0.57, "beta": 0.830, "gamma": 1.185,
        "source": "numerical: Stauffer & Aharony (1994)"},
    6: {"tau": 5 / 2, "d_f": 4.0, "nu": 1 / 2, "beta": 1.0, "gamma": 1.0,
        "source": "mean field (Bethe lattice), exact for d >= 6"},
}

#: largest lattice (sites) labelled with int32 ids
MAX_SITES = 2**31 - 2


@dataclasses.dataclass(frozen=True)
class Config:
    """Parameters of a lattice percolation dataset (``make_world`` + ``sample``)."""

    lattice: str = "square"
    size: int = 64
    ps: tuple[float, ...] | None = None
    n_levels: int = 8
    kind: str = "site"
    boundary: str = "free"
    dim: int | None = None
    x_level: int = 0
    random_x_level: bool = False
    site_truth: bool = True


@dataclasses.dataclass(frozen=True, eq=False)
class World:
    """A lattice and an increasing occupation ladder ``ps`` (K,)."""

    lattice: str
    dim: int
    size: int
    kind: str
    boundary: str
    ps: np.ndarray
    p_c: float | None
    p_c_source: str

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size,) * self.dim

    @property
    def n_sites(self) -> int:
        return self.size**self.dim

    @property
    def offsets(self) -> np.ndarray:
        return pl.offsets(self.lattice, self.dim)

    @property
    def periodic(self) -> bool:
        return self.boundary == "periodic"

    @property
    def level_ps(self) -> np.ndarray:
        """p of each level, coarsest (highest p) first."""
        return self.ps[::-1].copy()

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(f"clusters_p{p:.6f}" for p in self.level_ps)

    def params(self) -> dict[str, object]:
        return {"lattice": self.lattice, "dim": self.dim, "size": self.size, "kind": self.kind,
                "boundary": self.boundary, "ps": self.ps.tolist(), "p_c": self.p_c}


def threshold(lattice: str, kind: str = "site", dim: int | None = None) -> float:
    """The known percolation threshold p_c of ``lattice`` (see :data:`THRESHOLDS`)."""
    key = _table_key(lattice, _check_lattice(lattice, dim), kind)
    if key not in THRESHOLDS:
        raise ValueError(f"no known threshold for {lattice} d={key[1]} {kind} percolation; "
                         "pass ps explicitly")
    return THRESHOLDS[key][0]


def _table_key(lattice: str, d: int, kind: str) -> tuple[str, int, str]:
    """Hypercubic lattices in d = 2, 3 are the square and simple cubic lattices."""
    if lattice == "hypercubic" and d in (2, 3):
        lattice = "square" if d == 2 else "cubic"
    return (lattice, d, kind)


def critical_ladder(p_c: float, n_levels: int) -> tuple[float, ...]:
    """An increasing ladder closing in on ``p_c`` geometrically from both sides:
    ``p_c (1 - 2^-k)`` for ``k = 1..⌊K/2⌋``, then ``p_c``, then
    ``p_c + (1 - p_c) 2^-k`` for ``k = K-⌊K/2⌋-1 .. 1``."""
    if isinstance(n_levels, bool) or not isinstance(n_levels, int | np.integer) or n_levels < 1:
        raise ValueError(f"n_levels={n_levels!r} must be a positive integer")
    if not 0.0 < p_c < 1.0:
        raise ValueError(f"p_c={p_c} must lie strictly between 0 and 1")
    n_below = n_levels // 2
    n_above = n_levels - n_below - 1
    below = [p_c * (1 - 2.0**-k) for k in range(1, n_below + 1)]
    above = [p_c + (1 - p_c) * 2.0**-k for k in range(n_above, 0, -1)]
    return (*below, p_c, *above)


def _check_lattice(lattice: str, dim: int | None) -> int:
    if lattice not in pl.LATTICE_DIMS:
        raise ValueError(f"lattice={lattice!r} is unknown; choose one of "
                         f"{sorted(pl.LATTICE_DIMS)}")
    fixed = pl.LATTICE_DIMS[lattice]
    if fixed is not None:
        if dim is not None and dim != fixed:
            raise ValueError(f"lattice={lattice!r} has dim {fixed}, not dim={dim}; "
                             "omit dim or use lattice='hypercubic'")
        return fixed
    if isinstance(dim, bool) or dim not in pl.HYPERCUBIC_DIMS:
        raise ValueError(f"lattice='hypercubic' needs dim in {pl.HYPERCUBIC_DIMS}, got "
                         f"dim={dim!r}")
    return int(dim)


def make_world(*, lattice: str = "square", size: int, ps: Sequence[float] | None = None,
               n_levels: int = 8, kind: str = "site", boundary: str = "free",
               dim: int | None = None, rng: _rng.RNGLike = None) -> World:
    """A lattice of ``size**d`` sites and an occupation ladder.

    ``ps`` must be strictly increasing in [0, 1]; if omitted, the ladder is
    :func:`critical_ladder` around the known threshold with ``n_levels`` rungs.
    ``rng`` is accepted for the protocol (a percolation world has no randomness).
    """
    d = _check_lattice(lattice, dim)
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 2:
        raise ValueError(f"size={size!r} must be an integer >= 2 (sites per side)")
    if kind not in ("site", "bond"):
        raise ValueError(f"kind={kind!r} must be 'site' or 'bond'")
    if boundary not in ("free", "periodic"):
        raise ValueError(f"boundary={boundary!r} must be 'free' or 'periodic'")
    if int(size) ** d > MAX_SITES:
        raise ValueError(f"size={size} in d={d} is too large for int32 cluster ids; "
                         "lower size")
    known = THRESHOLDS.get(_table_key(lattice, d, kind))
    p_c, src = (None, "") if known is None else known
    if ps is None:
        if p_c is None:
            raise ValueError(f"no known threshold for {lattice} {kind}; pass ps explicitly")
        if isinstance(n_levels, int | np.integer) and n_levels > pl.MAX_RUNGS:
            raise ValueError(f"n_levels={n_levels} exceeds {pl.MAX_RUNGS} rungs")
        ladder = np.asarray(critical_ladder(p_c, n_levels), dtype=np.float64)
    else:
        ladder = np.asarray(ps, dtype=np.float64).ravel()
        if ladder.size == 0:
            raise ValueError("ps is empty; pass at least one occupation probability")
        if ladder.size > pl.MAX_RUNGS:
            raise ValueError(f"ps has {ladder.size} rungs; at most {pl.MAX_RUNGS} are "
                             "supported")
        if not np.all(np.isfinite(ladder)) or ladder.min() < 0 or ladder.max() > 1:
            raise ValueError(f"ps={ladder.tolist()} must lie in [0, 1]")
        if np.any(np.diff(ladder) <= 0):
            raise ValueError(f"ps={ladder.tolist()} must be strictly increasing "
                             "(levels are nested by increasing p); sort them")
    return World(lattice=lattice, dim=d, size=int(size), kind=kind, boundary=boundary,
                 ps=ladder, p_c=p_c, p_c_source=src)


def draw_field(world: World, gen: np.random.Generator,
               out: np.ndarray | None = None) -> np.ndarray:
    """One uniform field: (*shape) for site, (n_offsets, *shape) for bond percolation
    (written into ``out``, float64 of that shape, when given)."""
    shape = world.shape if world.kind == "site" else (len(world.offsets), *world.shape)
    if out is None:
        return gen.random(shape)
    return gen.random(out=out.reshape(shape))


def label(world: World, open_: np.ndarray) -> pl.Labels:
    """Label a batch of configurations of this world: sites (n, *shape) or bonds
    (n, n_offsets, *shape), boolean."""
    if world.kind == "site":
        return pl.label_sites(open_, world.offsets, world.periodic)
    return pl.label_bonds(open_, world.offsets, world.periodic)


def merge_tree(world: World, field: np.ndarray) -> MergeTree:
    """The Newman–Ziff merge tree of one sample's ``field``; see
    :func:`generators.percolation.labels.labels_at` for the clusters at any p."""
    return pl.merge_tree(np.asarray(field), world.offsets, world.periodic, world.kind)


def _chunk(world: World, ss: np.random.SeedSequence, start: int, stop: int, x_level: int,
           random_x_level: bool, site_truth: bool, meta: dict) -> HierarchicalSample:
    """Samples ``start..stop``: the fields are drawn per sample, then every rung of
    every sample is labelled in one union–find pass (:func:`pl.label_ladder`)."""
    n = stop - start
    K = world.ps.size
    lps = world.level_ps
    field_shape = world.shape if world.kind == "site" else (len(world.offsets), *world.shape)
    fields = np.empty((n, *field_shape))
    x_levels = np.full(n, x_level, dtype=np.int64)  # (n,)
    for i in range(n):
        gen = _rng.block_generator(ss, start + i)
        draw_field(world, gen, out=fields[i])
        if random_x_level:
            x_levels[i] = gen.integers(K)
    lad = pl.label_ladder(fields.reshape(n, int(np.prod(field_shape))), world.ps, world.shape,
                          world.offsets, world.periodic, world.kind == "bond",
                          x_rung=K - 1 - x_levels, site_truth=site_truth)
    del fields
    aux: dict[str, np.ndarray] = {
        "p": np.broadcast_to(lps, (n, K)).copy(),
        "p_minus_pc": np.broadcast_to(lps - (world.p_c if world.p_c is not None else np.nan),
                                      (n, K)).copy(),
        "parent": lad.parent, "x_level": x_levels, "x_p": lps[x_levels],
        "n_clusters": lad.n_clusters, "largest_fraction": lad.largest / world.n_sites,
        "spans": lad.spans,
    }
    site_shape = (n, K, *world.shape)
    if site_truth:
        assert lad.cluster_size is not None and lad.in_largest is not None \
            and lad.in_spanning is not None
        aux["cluster_size"] = lad.cluster_size.reshape(site_shape)
        aux["in_largest"] = lad.in_largest.reshape(site_shape)
        aux["in_spanning"] = lad.in_spanning.reshape(site_shape)
    levels = tuple(lad.labels[j].reshape(n, *world.shape) for j in range(K))
    return HierarchicalSample(x=lad.x.reshape(n, *field_shape), levels=levels,
                              level_names=world.level_names, world=world, meta=meta, aux=aux)


def _meta(world: World, ss: np.random.SeedSequence, x_level: int, random_x_level: bool) -> dict:
    return {"generator": NAME, "params": world.params(),
            "x_level": "random per sample" if random_x_level else x_level,
            "p_c_source": world.p_c_source,
            "seed_entropy": _rng.seed_entropy(ss),
            "levels_layout": "levels[j] = cluster ids at aux['p'][:, j], coarsest (highest p) "
                             "first; 0 = empty; aux['parent'][:, j, c] = level-j id of "
                             "level-(j+1) cluster c",
            "seeding": "sample i uses block_generator(seed, i)"}


def _check_sample_args(world: World, n_samples: int, x_level: int) -> int:
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) \
            or n_samples < 0:
        raise ValueError(f"n_samples={n_samples!r} must be a non-negative integer")
    K = world.ps.size
    if isinstance(x_level, bool) or not -K <= x_level < K:
        raise ValueError(f"x_level={x_level} must index one of the {K} levels (0 = highest p)")
    return int(x_level) % K


def default_chunk(world: World) -> int:
    """Samples per chunk: about 2**20 sites (~120 MB of output with per-site truth)."""
    return max(1, 2**20 // world.n_sites)


def iter_chunks(world: World, n_samples: int, *, rng: _rng.RNGLike = None,
                chunk_size: int | None = None, x_level: int = 0,
                random_x_level: bool = False,
                site_truth: bool = True) -> Iterator[HierarchicalSample]:
    """``sample(world, n_samples, ...)`` in consecutive chunks; the chunks
    concatenate to exactly that draw whatever ``chunk_size`` is."""
    x_level = _check_sample_args(world, n_samples, x_level)
    ss = _rng.as_seed_sequence(rng)
    meta = _meta(world, ss, x_level, random_x_level)
    step = default_chunk(world) if chunk_size is None else int(chunk_size)
    if step < 1:
        raise ValueError(f"chunk_size={chunk_size} must be at least 1")
    for start in range(0, n_samples, step):
        yield _chunk(world, ss, start, min(start + step, n_samples), x_level, random_x_level,
                     site_truth, meta)


def sample(world: World, n_samples: int, *, rng: _rng.RNGLike = None, x_level: int = 0,
           random_x_level: bool = False, site_truth: bool = True) -> HierarchicalSample:
    """Draw ``n_samples`` lattices with cluster ids at every p of the ladder (see the
    module docstring for the layout of ``x``, ``levels`` and ``aux``)."""
    x_level = _check_sample_args(world, n_samples, x_level)
    ss = _rng.as_seed_sequence(rng)
    return _chunk(world, ss, 0, n_samples, x_level, random_x_level, site_truth,
                  _meta(world, ss, x_level, random_x_level))
