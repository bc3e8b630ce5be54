"""Cluster labelling on lattices: site and bond percolation, free or periodic.

Lattices are arrays of shape ``(L,) * d``; neighbours are given by a set of
*positive* offsets (the other half by symmetry):

- square / cubic / hypercubic: the unit vectors ``e_k`` (``2d`` neighbours);
- triangular: ``e_0, e_1, e_0 + e_1`` on a sheared square array (6 neighbours),
  the standard rhombus embedding of the triangular lattice.

Site percolation is labelled by :func:`scipy.ndimage.label` with a structuring
element holding exactly these neighbours and *no* connectivity along the batch
axis, so a whole chunk of samples is labelled in one compiled call. Bond
percolation is mapped to site percolation on the *expanded* lattice of shape
``(2L,) * d``: site ``x`` sits at ``2x`` (always occupied) and the bond from ``x``
along offset ``o`` at ``2x + o`` (occupied when the bond is open), so two sites
are connected exactly when an open bond joins them. Periodic boundaries: the
free-boundary clusters are merged across each face by
:func:`scipy.sparse.csgraph.connected_components` on the (small) graph of label
pairs that touch through the face.

Labels are ``0`` for empty sites and ``1..k`` otherwise, numbered in raster order
of each cluster's first site (the order of ``ndimage.label``), per sample.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

#: lattices and their dimension (None: any d in HYPERCUBIC_DIMS)
LATTICE_DIMS: dict[str, int | None] = {"square": 2, "triangular": 2, "cubic": 3,
                                       "hypercubic": None}
HYPERCUBIC_DIMS = (2, 3, 4, 5)


def offsets(lattice: str, dim: int) -> np.ndarray:
    """Positive neighbour offsets, shape ``(n_offsets, dim)``."""
    unit = np.eye(dim, dtype=np.int64)
    if lattice == "triangular":
        return np.vstack([unit, np.ones((1, dim), dtype=np.int64)])
    return unit


def structure(offs: np.ndarray, batch_axes: int = 1) -> np.ndarray:
    """Structuring element (3,)*(batch_axes+d) connecting the centre to ``±offs``
    and nothing along the leading ``batch_axes`` axes."""
    d = offs.shape[1]
    st = np.zeros((3,) * (batch_axes + d), dtype=bool)
    centre = (1,) * batch_axes
    st[(*centre, *([1] * d))] = True
    for o in offs:
        st[(*centre, *(1 + o))] = True
        st[(*centre, *(1 - o))] = True
    return st


def _compact_per_sample(lab: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample offsets of globally numbered labels ``lab`` (n, ...): labels of
    sample ``i`` are ``offset[i]+1 .. offset[i+1]``. Returns (offset (n+1,), label->sample)."""
    n = lab.shape[0]
    maxima = lab.reshape(n, -1).max(axis=1) if lab.size else np.zeros(n, np.int64)
    ends = np.maximum.accumulate(maxima.astype(np.int64)) if n else maxima.astype(np.int64)
    offset = np.concatenate([[0], ends])
    sample_of = np.repeat(np.arange(n), np.diff(offset))
    return offset, np.concatenate([[-1], sample_of])  # label 0 belongs to no sample


def _wrap_pairs(lab: np.ndarray, offs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label pairs (a, b) of occupied sites that are neighbours only through a
    periodic face. ``lab`` (n, *shape) with globally unique labels."""
    d = offs.shape[1]
    a_parts, b_parts = [], []
    for o in offs:
        for k in range(d):
            if o[k] == 0:
                continue
            lo = lab.take([lab.shape[1 + k] - 1], axis=1 + k)  # sites on the far face
            hi = lab.take([0], axis=1 + k)  # their neighbours through the face
            shift = tuple(-int(o[j]) for j in range(d) if j != k)
            axes = tuple(1 + j for j in range(d) if j != k)
            if axes:
                hi = np.roll(hi, shift, axis=axes)
            both = (lo > 0) & (hi > 0)
            a_parts.append(lo[both])
            b_parts.append(hi[both])
    return np.concatenate(a_parts), np.concatenate(b_parts)


class Labels(NamedTuple):
    """Globally numbered labels of a batch and their bookkeeping.

    ``lab`` (n, *shape) int: 0 empty, else a label unique across the batch;
    ``offset`` (n+1,): sample ``i`` owns labels ``offset[i]+1 .. offset[i+1]``;
    ``sample_of`` (n_labels+1,): the sample of each label (-1 for 0);
    ``span`` (n_labels+1, d) bool: the cluster crosses from face 0 to face L-1
    along axis k (on the free lattice; for periodic boundaries, a merged cluster
    spans when one of its free-boundary parts does).
    """

    lab: np.ndarray
    offset: np.ndarray
    sample_of: np.ndarray
    span: np.ndarray

    @property
    def n_labels(self) -> int:
        return int(self.offset[-1])

    def local(self) -> np.ndarray:
        """Labels numbered ``1..k`` within each sample, int32 (n, *shape)."""
        shifted = np.flatnonzero(self.offset[:-1])
        out = self.lab.astype(np.int32, copy=bool(shifted.size))  # never edit self.lab
        for i in shifted:  # per sample, not per site
            np.subtract(out[i], np.int32(self.offset[i]), out=out[i], where=out[i] > 0)
        return out


def _spanning(lab: np.ndarray, total: int, back: int = 1) -> np.ndarray:
    """(total+1, d) bool: label touches face 0 and face L-back along each axis."""
    d = lab.ndim - 1
    span = np.zeros((total + 1, d), dtype=bool)
    for k in range(d):
        lo = np.zeros(total + 1, dtype=bool)
        hi = np.zeros(total + 1, dtype=bool)
        lo[lab.take(0, axis=1 + k).ravel()] = True
        hi[lab.take(lab.shape[1 + k] - back, axis=1 + k).ravel()] = True
        span[:, k] = lo & hi
    span[0] = False
    return span


def label_sites(occupied: np.ndarray, offs: np.ndarray, periodic: bool,
                _back: int = 1) -> Labels:
    """Label site clusters of a batch ``occupied`` (n, *shape) bool."""
    lab, total = ndimage.label(occupied, structure=structure(offs))
    lab = np.asarray(lab)
    span = _spanning(lab, total, _back)
    if periodic and total:
        a, b = _wrap_pairs(lab, offs)
        if a.size:
            g = sparse.coo_array((np.ones(a.size, dtype=np.int8), (a, b)),
                                 shape=(total + 1, total + 1)).tocsr()
            # components are numbered in order of their smallest label, so raster
            # first-appearance order and per-sample contiguity are kept
            n_comp, comp = csgraph.connected_components(g, directed=False)
            comp = comp.astype(lab.dtype)
            merged_span = np.zeros((n_comp, span.shape[1]), dtype=bool)
            np.logical_or.at(merged_span, comp, span)
            lab, span, total = comp[lab], merged_span, n_comp - 1
    offset, sample_of = _compact_per_sample(lab, total)
    return Labels(lab, offset, sample_of, span)


def expand_bonds(open_bonds: np.ndarray, offs: np.ndarray, periodic: bool) -> np.ndarray:
    """Site-percolation picture of bond percolation.

    ``open_bonds`` (n, n_offsets, *shape) bool: bond from ``x`` to ``x + offs[j]``.
    Returns (n, *(2*shape)) bool with sites at even coordinates (always occupied)
    and bond ``j`` of ``x`` at ``2x + offs[j]``. With free boundaries, bonds that
    would leave the lattice are closed.
    """
    n, n_off = open_bonds.shape[:2]
    shape = open_bonds.shape[2:]
    d = len(shape)
    big = np.zeros((n, *(2 * s for s in shape)), dtype=bool)
    big[(slice(None), *([slice(0, None, 2)] * d))] = True
    for j in range(n_off):
        o = offs[j]
        bonds = open_bonds[:, j]
        if not periodic:
            keep = np.ones(shape, dtype=bool)
            for k in range(d):
                if o[k]:
                    keep[(slice(None),) * k + (-1,)] = False
            bonds = bonds & keep
        big[(slice(None), *(slice(int(o[k]), None, 2) for k in range(d)))] = bonds
    return big


def label_bonds(open_bonds: np.ndarray, offs: np.ndarray, periodic: bool) -> Labels:
    """Label bond-percolation clusters (every site belongs to one, isolated sites
    are clusters of size 1). ``open_bonds`` (n, n_offsets, *shape) bool."""
    d = offs.shape[1]
    # the last row of sites of the expanded lattice is at 2L-2
    full = label_sites(expand_bonds(open_bonds, offs, periodic), offs, periodic, _back=2)
    sites = full.lab[(slice(None), *([slice(0, None, 2)] * d))]
    # every cluster's first cell in raster order is a site, so no label is lost
    return Labels(np.ascontiguousarray(sites), full.offset, full.sample_of, full.span)


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
    (bond); scipy's compiled Kruskal does the union–find sweep."""
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
    n = int(np.prod(shape))
    # csgraph drops zero weights: lift them to the smallest positive float
    g = sparse.coo_array((np.maximum(w, np.finfo(np.float64).tiny), (i, j)), shape=(n, n))
    mst = sparse.coo_array(csgraph.minimum_spanning_tree(g.tocsr()))
    order = np.argsort(mst.data, kind="stable")
    edges = np.stack([mst.row[order], mst.col[order]], axis=1).astype(np.int64)
    return MergeTree(birth, edges, np.asarray(mst.data[order], dtype=np.float64), shape)


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
