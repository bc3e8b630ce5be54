"""Mean-field percolation clusters (Bethe lattice / d >= 6): Brill-style point clouds.

See ``shared/docs/background.md`` §2.3 and Brill (2024). A dataset is a stream of
clusters; each cluster is

1. a size ``s`` drawn with the cluster-number law of Poisson(λ) Galton–Watson trees,
   ``n_s ∝ P_λ(s)/s`` with the Borel law ``P_λ(s) = e^{-λs}(λs)^{s-1}/s!``, so
   ``n_s ∝ s^{-5/2}`` at λ = 1 and ``n_s ∝ s^{-5/2} e^{-s/s*}`` with
   ``s* = 1/(λ - 1 - ln λ) ≈ 2/(1-λ)^2`` off criticality (the branching knob λ plays
   the role of p/p_c), truncated at ``max_cluster_size``;
2. a uniform random labelled tree on ``s`` vertices: Poisson(1) offspring conditioned
   on summing to ``s - 1`` is Multinomial(s-1; 1/s, …, 1/s); the cycle lemma
   (Dwass 1969) rotates the offspring sequence to a valid breadth-first tree, which is
   the Poisson GW tree conditioned on size ``s`` — uniform on Cayley's ``s^{s-2}``
   labelled trees once labels are forgotten (Aldous 1991). Degrees tend to 1 + Poisson(1);
3. a binary latent "subcluster" hierarchy: every edge gets a uniform weight and each
   subcluster splits at its heaviest edge (the percolation merge tree of the cluster
   read top-down); level ``ℓ`` of a point is its subcluster after ``ℓ`` splits;
4. positions by a branching random walk: the root at ``N(0, centre_scale²)``, every
   child at its parent plus ``N(0, step_scale²)`` per coordinate;
5. a regression target: the sum along the point's latent path of one N(0, 1) value
   per subcluster (levels 0..n_levels).

Points are listed cluster by cluster, each cluster in breadth-first order. Clusters
come in blocks of :data:`CLUSTERS_PER_BLOCK`, each block seeded by its index, so a
larger dataset with the same seed has a smaller one as its prefix.

``levels[0]`` is the global cluster index; ``levels[ℓ] = cluster·2^ℓ + code`` with
``code`` the ℓ split decisions (1: the side below the cut edge). ``aux``: ``parent``
(global point index, -1 for a root), ``cluster_size``, ``depth``, ``target``.
:func:`ancestor_matrix` gives the point × subcluster incidence as CSR.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
from scipy import sparse
from scipy.special import gammaln

from generators import _rng
from generators._jit import jit
from generators.base import HierarchicalSample, concat

NAME = "percolation_mf"
#: clusters per independently seeded block (a format constant, recorded in meta)
CLUSTERS_PER_BLOCK = 2**14
#: deepest binary hierarchy (labels cluster·2^ℓ + code stay far inside int64)
MAX_LEVELS = 24


@dataclasses.dataclass(frozen=True)
class Config:
    """Parameters of a mean-field percolation dataset (``make_world`` + ``sample``)."""

    branching: float = 1.0
    max_cluster_size: int = 10_000
    n_levels: int = 6
    dim: int = 2
    step_scale: float = 1.0
    centre_scale: float = 100.0


@dataclasses.dataclass(frozen=True, eq=False)
class World:
    """Cluster-size law and embedding parameters; ``size_cdf`` (max_cluster_size,)."""

    branching: float
    max_cluster_size: int
    n_levels: int
    dim: int
    step_scale: float
    centre_scale: float
    size_cdf: np.ndarray

    @property
    def level_names(self) -> tuple[str, ...]:
        return ("cluster", *(f"subcluster{l}" for l in range(1, self.n_levels + 1)))

    @property
    def cutoff(self) -> float:
        """s* = 1/(λ - 1 - ln λ) (infinite at λ = 1)."""
        lam = self.branching
        g = lam - 1 - np.log(lam)
        return float("inf") if g <= 0 else float(1 / g)

    def params(self) -> dict[str, object]:
        return {"branching": self.branching, "max_cluster_size": self.max_cluster_size,
                "n_levels": self.n_levels, "dim": self.dim, "step_scale": self.step_scale,
                "centre_scale": self.centre_scale}


def cluster_number_law(branching: float, max_size: int) -> np.ndarray:
    """``n_s / Σ n_s`` for s = 1..max_size, n_s = P_λ(s)/s with the Borel law."""
    s = np.arange(1, max_size + 1, dtype=np.float64)
    lam = float(branching)
    log_borel = -lam * s + (s - 1) * np.log(lam * s) - gammaln(s + 1)
    logn = log_borel - np.log(s)
    w = np.exp(logn - logn.max())
    return w / w.sum()


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo \
            or (hi is not None and value > hi):
        rng_txt = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{name}={value!r} must be an integer {rng_txt}")
    return int(value)


def _check_pos(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive finite number")
    return float(value)


def make_world(*, branching: float = 1.0, max_cluster_size: int = 10_000, n_levels: int = 6,
               dim: int = 2, step_scale: float = 1.0, centre_scale: float = 100.0,
               rng: _rng.RNGLike = None) -> World:
    """The cluster-size law at mean offspring ``branching`` (λ; 1 is critical) and
    the embedding. ``rng`` is accepted for the protocol (nothing here is random)."""
    lam = _check_pos("branching", branching)
    smax = _check_int("max_cluster_size", max_cluster_size, 1, 10**8)
    L = _check_int("n_levels", n_levels, 0, MAX_LEVELS)
    d = _check_int("dim", dim, 1)
    cdf = np.cumsum(cluster_number_law(lam, smax))
    cdf[-1] = 1.0
    return World(branching=lam, max_cluster_size=smax, n_levels=L, dim=d,
                 step_scale=_check_pos("step_scale", step_scale),
                 centre_scale=_check_pos("centre_scale", centre_scale), size_cdf=cdf)


def draw_cluster_sizes(world: World, k: int, rng: _rng.RNGLike = None) -> np.ndarray:
    """``k`` cluster sizes (k,) int64 from the law ``n_s / Σ n_s`` of the world."""
    gen = _rng.as_generator(rng)
    sizes = np.searchsorted(world.size_cdf, gen.random(k), side="right") + 1
    return np.minimum(sizes, world.max_cluster_size).astype(np.int64)


def uniform_trees(sizes: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """Uniform random trees of the given sizes, concatenated in breadth-first order.

    Returns ``children`` (Σ sizes,): the number of children of every vertex; the
    parents are ``np.repeat(arange(m), children)`` for the non-root vertices (see
    :func:`parents_from_children`). Cycle-lemma construction, module docstring (2).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    m = int(sizes.sum())
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # (k,)
    # s-1 balls into s bins per cluster
    per = np.repeat(sizes, sizes - 1)  # (m - k,)
    base = np.repeat(start, sizes - 1)
    bins = base + (gen.random(per.size) * per).astype(np.int64)
    xi = np.bincount(bins, minlength=m)  # (m,)
    # Łukasiewicz path within each cluster; rotate to start after its first minimum
    walk = np.cumsum(xi - 1)
    before = np.concatenate([[0], walk])[start]
    local_walk = walk - np.repeat(before, sizes)
    seg_min = np.minimum.reduceat(local_walk, start) if m else local_walk
    at_min = np.flatnonzero(local_walk == np.repeat(seg_min, sizes))
    seg = np.searchsorted(start, at_min, side="right") - 1
    first = np.ones(at_min.size, dtype=bool)
    first[1:] = seg[1:] != seg[:-1]
    argmin = at_min[first] - start  # (k,) local index of the first minimum
    local = np.arange(m) - np.repeat(start, sizes)
    s_rep = np.repeat(sizes, sizes)
    src = np.repeat(start, sizes) + (local + np.repeat(argmin + 1, sizes)) % s_rep
    return xi[src]


def parents_from_children(children: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Parent index of every vertex (-1 for each tree's root), (m,) int64."""
    m = children.size
    parent = np.full(m, -1, dtype=np.int64)
    nonroot = np.ones(m, dtype=bool)
    nonroot[np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)] = False
    parent[nonroot] = np.repeat(np.arange(m), children)
    return parent


def path_sums(parent: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of ``values`` (m, ...) over each vertex and all its ancestors, by pointer
    jumping (O(m log depth))."""
    acc = values.copy()
    anc = parent.copy()
    live = np.flatnonzero(anc >= 0)
    while live.size:
        a = anc[live]
        acc[live] += acc[a]
        anc[live] = anc[a]
        live = live[anc[live] >= 0]
    return acc


@jit
def _forward_sums(parent: np.ndarray, acc: np.ndarray) -> None:
    """``acc[v] += acc[parent[v]]`` for every vertex in index order: with parents
    before children (breadth-first order) each row ends as the sum over the vertex
    and all its ancestors."""
    for v in range(parent.size):
        p = parent[v]
        if p >= 0:
            for c in range(acc.shape[1]):
                acc[v, c] += acc[p, c]


@jit
def _split_round(parent: np.ndarray, weight: np.ndarray, state: np.ndarray, comp: np.ndarray,
                 below: np.ndarray, code: np.ndarray, n_comp: int) -> int:
    """One round of splits: every component (``comp``, numbered by smallest vertex)
    with a live edge loses its heaviest one (largest ``weight``, ties to the smaller
    vertex). ``state[v]``: 0 no edge (a root), 1 live edge to ``parent[v]``, 2 cut.
    Renumbers ``comp`` in one forward pass (a component's top vertex comes first),
    sets ``below`` (the side below this round's cut) and appends it to ``code``;
    returns the new number of components."""
    best = np.full(n_comp, -1, dtype=np.int64)
    for v in range(parent.size):
        if state[v] == 1:
            b = best[comp[v]]
            if b < 0 or weight[v] > weight[b]:
                best[comp[v]] = v
    for c in range(n_comp):
        if best[c] >= 0:
            state[best[c]] = 3  # cut in this round
    nc = 0
    for v in range(parent.size):
        if state[v] == 1:
            comp[v] = comp[parent[v]]
            below[v] = below[parent[v]]
        else:  # the top vertex of a component
            comp[v] = nc
            nc += 1
            below[v] = state[v] == 3
            if state[v] == 3:
                state[v] = 2
        code[v] = 2 * code[v] + below[v]
    return nc


def _split_levels(parent: np.ndarray, cluster: np.ndarray, levels: np.ndarray,
                  target: np.ndarray, gen: np.random.Generator) -> None:
    """Fill ``levels[1:]`` (n_levels, m) with ``cluster·2^ℓ + code`` and add one N(0, 1)
    value per subcluster to ``target`` (m,), level by level (``cluster`` block-local):
    each edge gets a uniform weight and each round cuts every subcluster at its
    heaviest live edge (:func:`_split_round`)."""
    m = parent.size
    child = np.flatnonzero(parent >= 0)  # edges, one per non-root vertex
    weight = np.zeros(m)
    weight[child] = gen.random(child.size)
    state = (parent >= 0).astype(np.int8)
    comp = cluster.astype(np.int32)
    n_comp = int(cluster.max()) + 1 if m else 0
    below = np.zeros(m, dtype=np.uint8)
    code = np.zeros(m, dtype=np.int64)
    for l in range(1, levels.shape[0]):
        n_comp = _split_round(parent, weight, state, comp, below, code, n_comp)
        np.multiply(levels[0], 2**l, out=levels[l])
        levels[l] += code
        target += gen.standard_normal(n_comp)[comp]


def _block(world: World, ss: np.random.SeedSequence, b: int) -> dict[str, np.ndarray]:
    """Every array of block ``b`` (block-local point indices in ``parent``)."""
    gen = _rng.block_generator(ss, b)
    K = CLUSTERS_PER_BLOCK
    sizes = draw_cluster_sizes(world, K, gen)
    children = uniform_trees(sizes, gen)
    parent = parents_from_children(children, sizes)
    local_cluster = np.repeat(np.arange(K), sizes)
    m = parent.size
    walk = np.empty((m, world.dim + 1))  # steps, then a column of ones for the depth
    walk[:, :-1] = gen.standard_normal((m, world.dim))
    walk[:, :-1] *= world.step_scale
    walk[:, -1] = 1.0
    roots = parent < 0
    walk[roots, :-1] = gen.standard_normal((K, world.dim)) * world.centre_scale
    _forward_sums(parent, walk)  # one pass for positions and depths (parents first)
    x = walk[:, :-1].astype(np.float32)
    depth = np.rint(walk[:, -1]).astype(np.int32) - 1
    del walk
    levels = np.empty((world.n_levels + 1, m), dtype=np.int64)
    levels[0] = local_cluster + b * K
    target = gen.standard_normal(K)[local_cluster]
    _split_levels(parent, local_cluster, levels, target, gen)
    return {"x": x, "levels": levels, "parent": parent,
            "cluster_size": np.repeat(sizes, sizes).astype(np.int32), "depth": depth,
            "target": target}


def _meta(world: World, ss: np.random.SeedSequence) -> dict:
    return {"generator": NAME, "params": world.params(), "seed_entropy": _rng.seed_entropy(ss),
            "clusters_per_block": CLUSTERS_PER_BLOCK, "cutoff": world.cutoff,
            "levels_layout": "levels[0] = cluster index; levels[l] = cluster*2**l + code of "
                             "the l binary splits; points cluster by cluster, breadth first"}


def _empty(world: World, n: int) -> dict[str, np.ndarray]:
    return {"x": np.empty((n, world.dim), dtype=np.float32),
            "levels": np.empty((world.n_levels + 1, n), dtype=np.int64),
            "parent": np.empty(n, dtype=np.int64), "cluster_size": np.empty(n, dtype=np.int32),
            "depth": np.empty(n, dtype=np.int32), "target": np.empty(n, dtype=np.float64)}


def _as_sample(world: World, arrays: dict[str, np.ndarray], meta: dict) -> HierarchicalSample:
    return HierarchicalSample(
        x=arrays["x"], levels=tuple(arrays["levels"]), level_names=world.level_names,
        world=world, meta=meta,
        aux={k: arrays[k] for k in ("parent", "cluster_size", "depth", "target")})


def iter_chunks(world: World, n_samples: int, *, rng: _rng.RNGLike = None,
                chunk_size: int = 2**18) -> Iterator[HierarchicalSample]:
    """The first ``n_samples`` points of the cluster stream, in chunks of at most
    ``chunk_size`` points (the same points whatever the chunking). Each chunk is
    allocated once and filled block by block, so memory is one chunk plus one block."""
    n = _check_int("n_samples", n_samples, 0)
    step = _check_int("chunk_size", chunk_size, 1)
    ss = _rng.as_seed_sequence(rng)
    meta = _meta(world, ss)
    b, offset, pos = 0, 0, 0  # next block, global index of its first point, points used
    blk: dict[str, np.ndarray] = {"x": np.zeros((0, world.dim))}
    for start in range(0, n, step):
        take = min(step, n - start)
        out = _empty(world, take)
        filled = 0
        while filled < take:
            if pos == blk["x"].shape[0]:
                blk = _block(world, ss, b)
                blk["parent"] = np.where(blk["parent"] >= 0, blk["parent"] + offset, -1)
                offset += blk["x"].shape[0]
                b, pos = b + 1, 0
            k = min(take - filled, blk["x"].shape[0] - pos)
            for key, arr in out.items():
                if key == "levels":
                    arr[:, filled:filled + k] = blk[key][:, pos:pos + k]
                else:
                    arr[filled:filled + k] = blk[key][pos:pos + k]
            filled, pos = filled + k, pos + k
        yield _as_sample(world, out, meta)


def sample(world: World, n_samples: int, *, rng: _rng.RNGLike = None) -> HierarchicalSample:
    """The first ``n_samples`` points of the cluster stream with every latent level."""
    chunks = list(iter_chunks(world, n_samples, rng=rng, chunk_size=max(int(n_samples), 1)))
    if chunks:
        return concat(chunks)
    ss = _rng.as_seed_sequence(rng)
    return _as_sample(world, _empty(world, 0), _meta(world, ss))


def ancestor_matrix(s: HierarchicalSample) -> tuple[sparse.csr_array, np.ndarray]:
    """Point × subcluster incidence (n, n_nodes) as CSR, one 1 per point and level,
    and ``nodes`` (n_nodes, 2): the (level, id) of every column."""
    n = s.n_samples
    cols, nodes, off = [], [], 0
    for l, lv in enumerate(s.levels):
        ids, inv = np.unique(lv, return_inverse=True)
        cols.append(inv + off)
        nodes.append(np.stack([np.full(ids.size, l), ids], axis=1))
        off += ids.size
    L = len(s.levels)
    indices = np.stack(cols, axis=1).ravel() if cols else np.zeros(0, np.int64)
    indptr = np.arange(0, n * L + 1, L)
    mat = sparse.csr_array((np.ones(n * L, dtype=np.int8), indices, indptr), shape=(n, off))
    return mat, np.concatenate(nodes) if nodes else np.zeros((0, 2), np.int64)
