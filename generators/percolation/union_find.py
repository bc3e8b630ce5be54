"""Union–find kernels for lattice percolation (compiled by :func:`generators._jit.jit`).

One incremental pass labels a whole occupation ladder ``p_0 < … < p_{K-1}``
(Newman & Ziff, PRL 85, 4104 (2000): sites enter in order of their uniform variable;
Hoshen & Kopelman, PRB 14, 3438 (1976): raster-order labelling). A site (bond) is
open at ``p_k`` when its uniform value ``u < p_k``, i.e. when its *rung*
``#{t : p_t <= u}`` is at most ``k``; a counting sort groups the sites (bonds) by
rung. Going up the ladder, rung ``k`` opens its sites (bonds) and unites them with
their open neighbours; open sets are nested, so one union–find serves every level.
Closed sites point to an extra slot ``N``. After each rung:

1. the union–find holds the clusters of the *free-boundary* lattice (edges that
   leave the lattice are never added). Unions are by smallest index, so every root
   is the first site of its cluster in raster order;
2. periodic boundaries: the open wrap-around edges join free roots in a second,
   per-rung union–find (again by smallest index);
3. spanning: a free-boundary cluster spans axis ``a`` when it holds a site on face
   ``x_a = 0`` and one on face ``x_a = L_a - 1``; a periodic cluster spans when one
   of its free-boundary parts does (the convention of :mod:`generators.percolation`);
4. one raster pass compresses every path (``par[par[i]]`` is the root, since the
   parent ``par[i] <= i`` was visited first) and numbers clusters ``1..k`` in order
   of first site; per-site truth is then gathered from per-cluster tables;
5. the parent map of the previous (finer) rung reads the new id at each finer
   cluster's first site.

Kernels never draw random numbers: the caller passes the uniform fields.
"""

from __future__ import annotations

import numpy as np

from generators._jit import jit


@jit
def _find(par: np.ndarray, x: int) -> int:
    """Root of ``x`` with path halving (keeps ``par[y] <= y``)."""
    while par[x] != x:
        par[x] = par[par[x]]
        x = par[x]
    return x


@jit
def _border(shape: np.ndarray, offs: np.ndarray) -> np.ndarray:
    """Per site (N,) uint16: bit ``2o`` set when ``x + offs[o]`` lies inside the
    lattice, bit ``2o+1`` when ``x - offs[o]`` does (the free-boundary neighbours)."""
    d = shape.size
    n_off = offs.shape[0]
    Lr = shape[d - 1]
    n_rows = 1
    for a in range(d - 1):
        n_rows *= shape[a]
    out = np.empty(n_rows * Lr, dtype=np.uint16)
    coord = np.zeros(d, dtype=np.int64)
    ends = np.zeros(3, dtype=np.int64)  # masks at x_last = 0, inside, L-1
    for q in range(n_rows):  # one row along the last axis at a time
        rem = q
        for a in range(d - 2, -1, -1):
            coord[a] = rem % shape[a]
            rem //= shape[a]
        for e in range(3):
            coord[d - 1] = 0 if e == 0 else (Lr - 1 if e == 2 else 1)
            m = 0
            for o in range(n_off):
                fwd = True
                bwd = True
                for a in range(d):
                    if offs[o, a] != 0:
                        fwd = fwd and coord[a] < shape[a] - 1
                        bwd = bwd and coord[a] > 0
                m |= (int(fwd) << (2 * o)) | (int(bwd) << (2 * o + 1))
            ends[e] = m
        out[q * Lr:(q + 1) * Lr] = ends[1]
        out[q * Lr + Lr - 1] = ends[2]
        out[q * Lr] = ends[0]  # last, so that Lr = 1 keeps both ends' bits cleared
    return out


@jit
def _relabel(ids: np.ndarray, lab: np.ndarray, par: np.ndarray, par2: np.ndarray,
             flag: np.ndarray, size: np.ndarray, tsize: np.ndarray, sbits: np.ndarray, big: int,
             periodic: bool, first: np.ndarray, lsize: np.ndarray, lflag: np.ndarray) -> int:
    """Step 4 for one rung: ids in raster order of first site, into the scratch
    ``ids`` (N+1,) and the output ``lab`` (N,); fills ``first``, ``lsize`` and
    ``lflag`` (bit 0: a largest cluster, bit 1: spanning) per id and returns the
    number of clusters. A non-root site's parent ``p < i`` was compressed earlier in
    the pass, so ``par[p]`` is its root, whose id is written. Closed sites point to
    the slot ``N`` (``par[N] = N``, ``ids[N] = 0``), so the loop has no branch on
    occupation."""
    nc = 0
    for i in range(lab.size):
        p = par[i]
        r = par[p]
        par[i] = r
        v = ids[r]
        if p == i:  # an open root: the first site of its cluster
            if periodic and par2[i] != i:  # joined to an earlier root through a face
                v = ids[par2[i]]
            else:
                nc += 1
                v = nc
                first[nc] = i
                sz = tsize[i] if periodic and flag[i] & 1 else size[i]
                lsize[nc] = sz
                lflag[nc] = (sz == big) | ((sbits[i] != 0) << 1)
        ids[i] = v
        lab[i] = v
    return nc


@jit
def _rungs(field: np.ndarray, ps: np.ndarray, xr: int, x: np.ndarray, lev: np.ndarray,
           order: np.ndarray, start: np.ndarray, cnt: np.ndarray, n_dir: int) -> None:
    """Rung ``#{t : p_t <= u}`` of every site (bond), ``x = rung <= xr``, and a
    counting sort of the sites by bucket ``rung·n_dir + direction``: bucket ``b``
    is ``order[start[b]:start[b+1]]``, in raster order (rung K: never open). Each
    direction's sites are sorted as two halves with their own counters ``cnt``
    (2, n_buckets), so the two scatter streams do not wait on each other."""
    K = ps.size
    N = field.size // n_dir
    h = N // 2
    for i in range(field.size):
        u = field[i]
        r = 0
        for t in range(K):
            r += u >= ps[t]
        lev[i] = r
        x[i] = r <= xr
    cnt[:] = 0
    for o in range(n_dir):
        for i in range(o * N, o * N + h):
            cnt[0, np.int64(lev[i]) * n_dir + o] += 1
        for i in range(o * N + h, (o + 1) * N):
            cnt[1, np.int64(lev[i]) * n_dir + o] += 1
    start[0] = 0
    for b in range(start.size - 1):  # a bucket's first-half sites come before its second's
        start[b + 1] = start[b] + cnt[0, b] + cnt[1, b]
        cnt[1, b] = start[b] + cnt[0, b]
        cnt[0, b] = start[b]
    for o in range(n_dir):
        base = o * N
        for i in range(h):
            b0 = np.int64(lev[base + i]) * n_dir + o
            b1 = np.int64(lev[base + h + i]) * n_dir + o
            order[cnt[0, b0]] = i
            cnt[0, b0] += 1
            order[cnt[1, b1]] = h + i
            cnt[1, b1] += 1
        if N % 2:
            b1 = np.int64(lev[base + N - 1]) * n_dir + o
            order[cnt[1, b1]] = N - 1
            cnt[1, b1] += 1


@jit
def _add_sites(sites: np.ndarray, border: np.ndarray, ostride: np.ndarray, par: np.ndarray,
               size: np.ndarray, best: int) -> int:
    """Open ``sites`` (one rung, in raster order) and unite each with its open
    neighbours (union by smaller root); returns the largest cluster size so far.
    A closed site points to ``N``; a same-rung neighbour after ``i`` is still
    closed when ``i`` opens and joins ``i`` from its own side."""
    N = par.size - 1
    if sites.size:
        best = max(best, 1)
    for i in sites:
        par[i] = i
        ri = i  # the root of i's set (i is new, so alone at first)
        m = border[i]
        for o in range(ostride.size):
            for sgn in range(2):
                if m & (1 << (2 * o + sgn)) == 0:
                    continue
                nb = i + ostride[o] if sgn == 0 else i - ostride[o]
                rb = par[nb]
                if rb == N:
                    continue
                if par[rb] != rb:
                    rb = _find(par, rb)
                if rb == ri:
                    continue
                if rb < ri:
                    par[ri] = rb
                    size[rb] += size[ri]
                    ri = rb
                else:
                    par[rb] = ri
                    size[ri] += size[rb]
                best = max(best, size[ri])
    return best


@jit
def _add_bonds(sites: np.ndarray, o: int, border: np.ndarray, ostride: np.ndarray,
               par: np.ndarray, size: np.ndarray, best: int) -> int:
    """Open bond ``o`` of each of ``sites`` (joining ``i`` and ``i + offs[o]``) and
    unite its ends; returns the largest cluster size so far."""
    bit = 1 << (2 * o)
    step = ostride[o]
    for i in sites:
        if border[i] & bit:
            ra = _find(par, i)
            rb = _find(par, i + step)
            if ra != rb:
                if rb < ra:
                    ra, rb = rb, ra
                par[rb] = ra
                size[ra] += size[rb]
                best = max(best, size[ra])
    return best


@jit
def _join_wrap(wrap: np.ndarray, k: int, bond: bool, lev: np.ndarray, par: np.ndarray,
               size: np.ndarray, par2: np.ndarray, tsize: np.ndarray, flag: np.ndarray,
               touched: np.ndarray, big: int) -> tuple[int, int]:
    """Step 2: unite free roots across the open wrap-around edges in ``par2``;
    ``tsize`` gets the merged sizes. Returns (number of touched roots, largest)."""
    N = par.size - 1
    nt = 0
    for e in range(wrap.shape[0]):
        a, b, o = wrap[e, 0], wrap[e, 1], wrap[e, 2]
        if bond:
            if lev[o * N + a] > k:
                continue
        elif lev[a] > k or lev[b] > k:
            continue
        ra = _find(par, a)
        rb = _find(par, b)
        for r in (ra, rb):
            if flag[r] == 0:
                flag[r] = 1
                touched[nt] = r
                nt += 1
        ra = _find(par2, ra)
        rb = _find(par2, rb)
        if ra < rb:
            par2[rb] = ra
        elif rb < ra:
            par2[ra] = rb
    for t in range(nt):
        par2[touched[t]] = _find(par2, touched[t])
    for t in range(nt):
        tsize[par2[touched[t]]] = 0
    for t in range(nt):
        r = touched[t]
        tsize[par2[r]] += size[r]
        big = max(big, tsize[par2[r]])
    return nt, big


@jit
def _spanning(faces: np.ndarray, shape: np.ndarray, k: int, all_open: bool, lev: np.ndarray,
              par: np.ndarray, par2: np.ndarray, periodic: bool, flag: np.ndarray,
              sbits: np.ndarray, slist: np.ndarray, spans: np.ndarray) -> int:
    """Step 3: ``sbits[root] |= 2 << a`` and ``spans[a] = True`` when a free part
    holds a site with ``x_a = 0`` and one with ``x_a = L_a - 1`` (``faces``: the
    ``x_a = 0`` sites of each axis in turn). Returns the length of ``slist``."""
    N = par.size - 1
    nsl = 0
    f0 = 0
    stride = N
    for a in range(shape.size):
        stride //= shape[a]
        f1 = f0 + N // shape[a]
        bit = 2 << a
        top = (shape[a] - 1) * stride
        for t in range(f0, f1):
            i = faces[t]
            if all_open or lev[i] <= k:
                r = _find(par, i)
                flag[r] = flag[r] | bit
        for t in range(f0, f1):
            i = faces[t] + top
            if all_open or lev[i] <= k:
                r = _find(par, i)
                if flag[r] & bit:
                    r2 = par2[r] if periodic else r
                    if sbits[r2] == 0:
                        slist[nsl] = r2
                        nsl += 1
                    sbits[r2] = sbits[r2] | bit
                    spans[a] = True
        for t in range(f0, f1):
            i = faces[t]
            if all_open or lev[i] <= k:
                r = _find(par, i)
                flag[r] = flag[r] & 1
        f0 = f1
    return nsl


@jit
def _flag_sites(ids: np.ndarray, lflag: np.ndarray, nc: int, bit: int, out: np.ndarray) -> None:
    """``out[i] = lflag[ids[i]] & bit``; with no or one flagged id a plain fill or
    comparison (the common cases: no spanning cluster, one largest cluster)."""
    n_hit = 0
    hit = 0
    for c in range(1, nc + 1):
        if lflag[c] & bit:
            n_hit += 1
            hit = c
    if n_hit == 0:
        out[:] = False
    elif n_hit == 1:
        for i in range(out.size):
            out[i] = ids[i] == hit
    else:
        for i in range(out.size):
            out[i] = (lflag[ids[i]] & bit) != 0


@jit
def _truth(ids: np.ndarray, lsize: np.ndarray, lflag: np.ndarray, nc: int, csize: np.ndarray,
           in_largest: np.ndarray, in_spanning: np.ndarray) -> None:
    """Per-site truth from the per-id facts of :func:`_relabel`."""
    for i in range(csize.size):
        csize[i] = lsize[ids[i]]
    _flag_sites(ids, lflag, nc, 1, in_largest)
    _flag_sites(ids, lflag, nc, 2, in_spanning)


def ladder_work(F: int, N: int, K: int, n_dir: int, n_faces: int, periodic: bool,
                n_wrap: int) -> tuple[np.ndarray, ...]:
    """Scratch arrays of :func:`ladder_kernel` for fields of ``F`` values over ``N``
    sites, ``K`` rungs, ``n_dir`` bond directions (1 for sites), initialised as the
    kernel expects: per value ``lev`` (rung) and ``order`` (counting sort); per site
    ``par``, ``ids``, ``size``, ``flag``, ``sbits``, ``first`` (2 rungs), ``lsize``,
    ``lflag``; ``par2``/``tsize`` for periodic joins (length 1 when free)."""
    np2 = N if periodic else 1
    ids = np.zeros(N + 1, dtype=np.int32)  # the current rung's ids; ids[N] = 0
    lsize = np.empty(N + 1, dtype=np.uint32)  # per id; id 0 (empty) has size 0, no flags
    lflag = np.empty(N + 1, dtype=np.uint8)
    lsize[0] = 0
    lflag[0] = 0
    return (np.empty(F, dtype=np.uint8), np.empty(F, dtype=np.int32),
            np.zeros((K + 1) * n_dir + 1, dtype=np.int64),
            np.zeros((2, (K + 1) * n_dir), dtype=np.int64),
            np.empty(N + 1, dtype=np.int32),  # par; slot N: where closed sites point
            ids, np.empty(N + 1, dtype=np.int32),
            np.zeros(N, dtype=np.uint8),  # face-0 marks (bits 1..d), wrap-touched (bit 0)
            np.zeros(N, dtype=np.uint8),  # spanning axes of a (periodic) root
            np.empty(n_faces + 1, dtype=np.int64),
            np.arange(np2, dtype=np.int32), np.zeros(np2, dtype=np.int32),
            np.empty(2 * n_wrap + 1, dtype=np.int64), np.empty((2, N + 1), dtype=np.int32),
            lsize, lflag)


@jit
def ladder_kernel(fields: np.ndarray, ps: np.ndarray, shape: np.ndarray, offs: np.ndarray,
                  bond: bool, periodic: bool, wrap: np.ndarray, faces: np.ndarray,
                  x_rung: np.ndarray, x: np.ndarray, labels: np.ndarray, n_clusters: np.ndarray,
                  largest: np.ndarray, spans: np.ndarray, parent: np.ndarray,
                  csize: np.ndarray, in_largest: np.ndarray, in_spanning: np.ndarray,
                  work: tuple) -> None:
    """Label every rung of the ladder ``ps`` (K,) for each sample's field.

    ``fields`` (n, F): uniform values, F = N sites (site) or n_off·N bonds (bond
    ``o`` of site ``i`` at ``o·N + i``, joining ``i`` and ``i + offs[o]``).
    ``shape`` (d,), ``offs`` (n_off, d) 0/1 positive offsets; ``wrap`` (m, 3): the
    wrap-around edges (site a, site b, offset index); ``faces``: flat indices of the
    sites with ``x_a = 0`` for each axis ``a`` in turn (``N // shape[a]`` each).
    Outputs, level ``j = K-1-k`` for rung ``k`` (coarsest first): ``x`` (n, F) uint8
    open at rung ``x_rung[s]``; ``labels`` (K, n, N) int32; ``n_clusters``,
    ``largest`` (n, K); ``spans`` (n, K, d) bool, False-filled; ``parent``
    (n, K-1, N+1) int32, zero-filled; per-site truth ``csize``, ``in_largest``,
    ``in_spanning`` (n, K, N), written only when their first axis is n.
    ``work``: the scratch arrays of :func:`ladder_work` (allocated by the caller with
    numpy, whose large blocks take transparent huge pages: fewer first-touch faults).
    """
    n = fields.shape[0]
    K = ps.size
    d = shape.size
    n_off = offs.shape[0]
    N = labels.shape[2]
    truth = csize.shape[0] == n
    ostride = np.zeros(n_off, dtype=np.int64)
    for o in range(n_off):
        stride = N
        for a in range(d):
            stride //= shape[a]
            ostride[o] += offs[o, a] * stride
    border = _border(shape, offs)
    n_dir = n_off if bond else 1
    (lev, order, start, cnt, par, ids, size, flag, sbits, slist, par2, tsize, touched, first,
     lsize, lflag) = work
    for s in range(n):
        _rungs(fields[s], ps, x_rung[s], x[s], lev, order, start, cnt, n_dir)
        for i in range(N + 1):
            par[i] = i if bond else N
            size[i] = 1
        best = 1 if bond else 0  # size of the largest free-boundary cluster
        nc_prev = 0
        for k in range(K):
            j = K - 1 - k
            # 1. add rung k: open sites (bonds) join their open neighbours
            if bond:
                for o in range(n_off):
                    b = k * n_off + o
                    best = _add_bonds(order[start[b]:start[b + 1]], o, border, ostride, par,
                                      size, best)
            else:
                best = _add_sites(order[start[k]:start[k + 1]], border, ostride, par, size,
                                  best)
            # 2. periodic: join free roots through the open wrap-around edges
            nt, big = 0, best
            if periodic:
                nt, big = _join_wrap(wrap, k, bond, lev, par, size, par2, tsize, flag, touched,
                                     best)
            # 3. spanning axes: a free part touching face 0 and face L-1
            nsl = _spanning(faces, shape, k, bond, lev, par, par2, periodic, flag, sbits,
                            slist, spans[s, j])
            # 4. one raster pass: compress, number by first site, write ids
            cur = k % 2
            lab = labels[j, s]
            nc = _relabel(ids, lab, par, par2, flag, size, tsize, sbits, big, periodic,
                          first[cur], lsize, lflag)
            n_clusters[s, j] = nc
            largest[s, j] = big
            if truth:
                _truth(ids, lsize, lflag, nc, csize[s, j], in_largest[s, j], in_spanning[s, j])
            # 5. parent map of the finer level j+1 (rung k-1)
            if k > 0:
                for c in range(1, nc_prev + 1):
                    parent[s, j, c] = ids[first[1 - cur, c]]
            nc_prev = nc
            for t in range(nsl):
                sbits[slist[t]] = 0
            for t in range(nt):
                r = touched[t]
                par2[r] = r
                flag[r] = 0


@jit
def kruskal(a: np.ndarray, b: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    """Kruskal's sweep over the edges ``(a[t], b[t])`` of a graph on ``n`` vertices
    in the given ``order``: True for the edges that join two clusters (with edge
    times from the uniform field, the Newman–Ziff merge tree)."""
    par = np.arange(n).astype(np.int32)
    keep = np.zeros(order.size, dtype=np.bool_)
    for t in order:
        ra = _find(par, a[t])
        rb = _find(par, b[t])
        if ra != rb:
            par[max(ra, rb)] = min(ra, rb)
            keep[t] = True
    return keep
