"""Cluster labelling on lattices: site and bond percolation, free or periodic.

Lattices are arrays of shape ``(L,) * d``; neighbours are given by a set of
*positive* offsets (the other half by symmetry):

- square / cubic / hypercubic: the unit vectors ``e_k`` (``2d`` neighbours);
- triangular: ``e_0, e_1, e_0 + e_1`` on a sheared square array (6 neighbours),
  the standard rhombus embedding of the triangular lattice.

Every labelling goes through one compiled union–find pass over an occupation ladder
(:func:`generators.percolation.union_find.ladder_kernel`): :func:`label_ladder` labels all
rungs of a ladder from one uniform field per sample, with parent maps and ground
truth; :func:`label_sites` and :func:`label_bonds` label given configurations (a
one-rung ladder). Bond ``o`` of site ``x`` joins ``x`` and ``x + offs[o]``; with free
boundaries the bonds that leave the lattice are closed, with periodic boundaries they
wrap around. Ids are ``0`` for empty sites and ``1..k`` otherwise, numbered in raster
order of each cluster's first site, per sample.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from generators.percolation.union_find import kruskal, ladder_kernel, ladder_work

#: lattices and their dimension (None: any d in HYPERCUBIC_DIMS)
LATTICE_DIMS: dict[str, int | None] = {"square": 2, "triangular": 2, "cubic": 3,
                                       "hypercubic": None}
HYPERCUBIC_DIMS = (2, 3, 4, 5)
#: longest ladder (rungs are stored as uint8)
MAX_RUNGS = 254


def offsets(lattice: str, dim: int) -> np.ndarray:
    """Positive neighbour offsets, shape ``(n_offsets, dim)``."""
    unit = np.eye(dim, dtype=np.int64)
    if lattice == "triangular":
        return np.vstack([unit, np.ones((1, dim), dtype=np.int64)])
    return unit


def structure(offs: np.ndarray, batch_axes: int = 1) -> np.ndarray:
    """Structuring element (3,)*(batch_axes+d) connecting the centre to ``±offs``
    and nothing along the leading ``batch_axes`` axes (for ``scipy.ndimage.label``)."""
    d = offs.shape[1]
    st = np.zeros((3,) * (batch_axes + d), dtype=bool)
    centre = (1,) * batch_axes
    st[(*centre, *([1] * d))] = True
    for o in offs:
        st[(*centre, *(1 + o))] = True
        st[(*centre, *(1 - o))] = True
    return st


def faces(shape: tuple[int, ...]) -> np.ndarray:
    """Flat indices of the sites with ``x_a = 0`` for each axis ``a`` in turn,
    ``N / shape[a]`` each."""
    parts = []
    for a in range(len(shape)):
        other = [s for k, s in enumerate(shape) if k != a]
        coords = np.insert(np.indices(other).reshape(len(other), -1), a, 0, axis=0)
        parts.append(np.ravel_multi_index(tuple(coords), shape))
    return np.concatenate(parts).astype(np.int64)


def wrap_edges(shape: tuple[int, ...], offs: np.ndarray) -> np.ndarray:
    """The edges that cross a periodic face, (m, 3): site ``a`` on a last face,
    its neighbour ``b = (a + offs[o]) mod shape`` and ``o``."""
    N, strides, fc = int(np.prod(shape)), _strides(shape), faces(shape)
    far, start = [], 0
    for k, side in enumerate(shape):  # sites with x_k = L_k - 1
        far.append(fc[start:start + N // side] + (side - 1) * strides[k])
        start += N // side
    out = [np.zeros((0, 3), dtype=np.int64)]
    for o, off in enumerate(offs):
        a = np.unique(np.concatenate([far[k] for k in range(len(shape)) if off[k]]))
        coords = np.stack(np.unravel_index(a, shape))
        b = np.ravel_multi_index(tuple((coords + off[:, None]) % np.array(shape)[:, None]),
                                 shape)
        out.append(np.stack([a, b, np.full(a.size, o)], axis=1).astype(np.int64))
    return np.concatenate(out)


def _strides(shape: tuple[int, ...]) -> np.ndarray:
    return np.array([int(np.prod(shape[k + 1:])) for k in range(len(shape))], dtype=np.int64)


class Ladder(NamedTuple):
    """Every rung of a ladder for a batch of ``n`` samples (level ``j`` is rung
    ``K-1-j``: coarsest, highest p first).

    ``x`` (n, F) uint8: open sites (bonds) at each sample's chosen rung;
    ``labels`` (K, n, N) int32 ids; ``n_clusters``, ``largest`` (n, K) int64 (size of
    the largest cluster); ``spans`` (n, K, d) bool: some cluster crosses axis ``a``;
    ``parent`` (n, K-1, N+1) int32: level-``j`` id of each level-``j+1`` cluster;
    per site (n, K, N), or None without site truth: ``cluster_size`` uint32,
    ``in_largest`` and ``in_spanning`` bool.
    """

    x: np.ndarray
    labels: np.ndarray
    n_clusters: np.ndarray
    largest: np.ndarray
    spans: np.ndarray
    parent: np.ndarray
    cluster_size: np.ndarray | None
    in_largest: np.ndarray | None
    in_spanning: np.ndarray | None


def label_ladder(fields: np.ndarray, ps: np.ndarray, shape: tuple[int, ...], offs: np.ndarray,
                 periodic: bool, bond: bool, x_rung: np.ndarray | None = None,
                 site_truth: bool = True) -> Ladder:
    """Label the clusters of ``fields`` (n, F) (site: F = N, bond: F = n_off·N, bond
    ``o`` of site ``i`` at ``o·N + i``) at every ``p`` of the increasing ladder ``ps``:
    open at ``p`` when ``u < p``. See :mod:`generators.percolation.union_find` for the pass."""
    ps = np.ascontiguousarray(ps, dtype=np.float64)
    K, d, N = ps.size, len(shape), int(np.prod(shape))
    n = fields.shape[0]
    if not 1 <= K <= MAX_RUNGS:
        raise ValueError(f"a ladder needs 1..{MAX_RUNGS} rungs, got {K}")
    if np.any(np.diff(ps) <= 0):
        raise ValueError(f"ps={ps.tolist()} must be strictly increasing")
    F = N * (len(offs) if bond else 1)
    if fields.ndim != 2 or fields.shape[1] != F:
        raise ValueError(f"fields has shape {fields.shape}; expected (n, {F})")
    fields = np.ascontiguousarray(fields, dtype=np.float64)
    x_rung = (np.zeros(n, np.int64) if x_rung is None
              else np.ascontiguousarray(x_rung, dtype=np.int64))
    wrap = wrap_edges(shape, offs) if periodic else np.zeros((0, 3), dtype=np.int64)
    nt = n if site_truth else 0
    x, labels = np.empty((n, F), dtype=np.uint8), np.empty((K, n, N), dtype=np.int32)
    n_clusters, largest = np.empty((n, K), dtype=np.int64), np.empty((n, K), dtype=np.int64)
    spans = np.zeros((n, K, d), dtype=bool)
    parent = np.zeros((n, max(K - 1, 0), N + 1), dtype=np.int32)  # untouched pages stay free
    csize = np.empty((nt, K, N), dtype=np.uint32)
    in_largest, in_spanning = np.empty((nt, K, N), dtype=bool), np.empty((nt, K, N), dtype=bool)
    face = faces(shape)
    ladder_kernel(fields, ps, np.array(shape, dtype=np.int64),
                  np.ascontiguousarray(offs, dtype=np.int64), bool(bond), bool(periodic), wrap,
                  face, x_rung, x, labels, n_clusters, largest, spans, parent, csize,
                  in_largest, in_spanning,
                  ladder_work(F, N, K, len(offs) if bond else 1, face.size, periodic,
                              wrap.shape[0]))
    if not site_truth:
        return Ladder(x, labels, n_clusters, largest, spans, parent, None, None, None)
    return Ladder(x, labels, n_clusters, largest, spans, parent, csize, in_largest, in_spanning)


class Labels(NamedTuple):
    """Cluster ids of a batch at one p: ``lab`` (n, *shape) int32, 0 empty and
    ``1..k`` in raster order of first site per sample; ``n_clusters`` (n,);
    ``spans`` (n, d): some cluster crosses axis ``a`` (periodic: one of its
    free-boundary parts does)."""

    lab: np.ndarray
    n_clusters: np.ndarray
    spans: np.ndarray

    @property
    def n_labels(self) -> int:
        return int(self.n_clusters.sum())

    def local(self) -> np.ndarray:
        """The ids, numbered ``1..k`` within each sample (n, *shape) int32."""
        return self.lab


def _label_open(open_: np.ndarray, shape: tuple[int, ...], offs: np.ndarray, periodic: bool,
                bond: bool) -> Labels:
    n = open_.shape[0]
    field = np.where(open_, 0.0, 1.0).reshape(n, -1)  # open below p = 1/2
    lad = label_ladder(field, np.array([0.5]), shape, offs, periodic, bond, site_truth=False)
    return Labels(lad.labels[0].reshape(n, *shape), lad.n_clusters[:, 0], lad.spans[:, 0])


def label_sites(occupied: np.ndarray, offs: np.ndarray, periodic: bool) -> Labels:
    """Label site clusters of a batch ``occupied`` (n, *shape) bool."""
    occupied = np.asarray(occupied, dtype=bool)
    return _label_open(occupied, occupied.shape[1:], offs, periodic, bond=False)


def label_bonds(open_bonds: np.ndarray, offs: np.ndarray, periodic: bool) -> Labels:
    """Label bond-percolation clusters (every site belongs to one, isolated sites
    are clusters of size 1). ``open_bonds`` (n, n_offsets, *shape) bool."""
    open_bonds = np.asarray(open_bonds, dtype=bool)
    return _label_open(open_bonds, open_bonds.shape[2:], offs, periodic, bond=True)


# --- Newman–Ziff merge tree ---------------------------------------------------------------

def lattice_edges(shape: tuple[int, ...], offs: np.ndarray,
                  periodic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All nearest-neighbour edges (i, j, offset index) of a lattice, flat site
    indices in C order; free boundaries drop the edges that leave the lattice."""
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    coords = np.indices(shape)
    src, dst, which = [], [], []
    for j, o in enumerate(offs):
        nb = np.roll(idx, tuple(-int(v) for v in o), axis=tuple(range(len(shape))))
        keep = np.ones(shape, dtype=bool)
        if not periodic:
            for k, v in enumerate(o):
                if v:
                    keep &= coords[k] < shape[k] - 1
        src.append(idx[keep])
        dst.append(nb[keep])
        which.append(np.full(int(keep.sum()), j))
    return np.concatenate(src), np.concatenate(dst), np.concatenate(which)


class MergeTree(NamedTuple):
    """The Newman–Ziff sweep of one sample as a sorted minimum spanning forest.

    ``birth`` (N,): the p at which each site joins (its field value ``u``; 0 for
    bond percolation, where every site is present). ``edges`` (m, 2) and
    ``times`` (m,): the merges, in increasing time; merge ``t`` joins the two
    clusters containing ``edges[t]`` at ``p = times[t]``. The clusters at any ``p``
    are the components of the sites born before ``p`` under the merges before ``p``.
    """

    birth: np.ndarray
    edges: np.ndarray
    times: np.ndarray
    shape: tuple[int, ...]


def merge_tree(field: np.ndarray, offs: np.ndarray, periodic: bool, kind: str) -> MergeTree:
    """Newman & Ziff, PRL 85, 4104 (2000): add sites (bonds) in order of their
    uniform variable and union clusters as they touch. Equivalently Kruskal's
    algorithm on the lattice with edge time ``max(u_i, u_j)`` (site) or ``u_bond``
    (bond): the edges are sorted by time (stable) and swept by the compiled
    union–find :func:`generators.percolation.union_find.kruskal`."""
    if kind == "site":
        shape = field.shape
        i, j, _ = lattice_edges(shape, offs, periodic)
        u = field.ravel()
        w = np.maximum(u[i], u[j])
        birth = u.astype(np.float64)
    else:
        shape = field.shape[1:]
        i, j, which = lattice_edges(shape, offs, periodic)
        w = field.reshape(field.shape[0], -1)[which, i]
        birth = np.zeros(int(np.prod(shape)))
    order = np.argsort(w, kind="stable")
    sel = order[kruskal(i, j, order, int(np.prod(shape)))[order]]  # merges, in time order
    edges = np.stack([i[sel], j[sel]], axis=1).astype(np.int64)
    return MergeTree(birth, edges, np.asarray(w[sel], dtype=np.float64), shape)


def labels_at(tree: MergeTree, p: float) -> np.ndarray:
    """Cluster labels (``*shape``, int32, 0 empty, raster first-appearance order) at
    occupation probability ``p``, read off the merge tree."""
    n = tree.birth.size
    m = int(np.searchsorted(tree.times, p, side="left"))  # merges with time < p
    e = tree.edges[:m]
    g = sparse.coo_array((np.ones(m, dtype=np.int8), (e[:, 0], e[:, 1])), shape=(n, n))
    _, comp = csgraph.connected_components(g.tocsr(), directed=False)
    present = tree.birth < p
    out = np.zeros(n, dtype=np.int32)
    # components are numbered by their smallest site, so unique() keeps raster order
    _, inv = np.unique(comp[present], return_inverse=True)
    out[present] = inv + 1
    return out.reshape(tree.shape)
