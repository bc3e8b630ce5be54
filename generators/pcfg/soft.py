"""Posterior ("soft") ancestor labels of layered PCFGs, in linear time.

In an ambiguous grammar the string does not determine its tree, so the ancestor of a
token at depth ``d`` is a random variable given the string. Its law,
``P(ancestor_d(t) = A | x)``, is the best any probe can know; its most probable
value is the *MAP label*, and the mean of ``max_A P(ancestor_d(t) = A | x)`` is the
accuracy a Bayes-optimal labeller reaches against the generating tree.

For a layered grammar (every nonterminal at one depth) the derivation is a hidden
Markov model over ancestor chains (:mod:`generators.pcfg.prefix`), so the
forward–backward recursion (Rabiner 1989, eqs. 18–27) gives the chain posterior of
every token::

    alpha_t(c) = P(x_<t, chain_t = c),   alpha_0 = pi,
    alpha_{t+1} = T^T (alpha_t * e_t),   e_t(c) = [emit(c) = x_t]
    b_{n-1}(c) = e_{n-1}(c) [c final],   b_t(c) = e_t(c) (T b_{t+1})(c)
    gamma_t(c) = alpha_t(c) b_t(c) / P(x)

and ``P(ancestor_d(t) = A | x) = sum_c gamma_t(c) [symbol_d(c) = A]``. Both passes
only visit chains that emit the observed token, and each vector is rescaled per step
(``alpha_t`` to sum 1, ``b_t`` to maximum 1; ``gamma_t`` is renormalised, so the
scales cancel). The values equal :func:`generators.pcfg.inference.ancestor_posteriors`
(the cubic span chart), which the tests check.

The compiled kernel :func:`_forward_backward` (a whole batch of strings per call) goes
further and visits only the *reachable* chains: the support ``S_t`` of ``alpha_t`` is
the set of chains reached from ``S_{t-1}`` by a stored transition, kept as a list with
its values (``S_0``: the chains with ``pi > 0``). ``b_t`` is computed on ``S_t`` only,
which changes no posterior: ``gamma_t = 0`` off ``S_t``, and every chain that a row of
``S_{t-1}`` reaches lies in ``S_t``, so ``(T b_t)(c)`` for ``c`` in ``S_{t-1}`` reads
``b_t`` on ``S_t`` only (only the scale of ``b_t``, its maximum over ``S_t``, differs).
The cost per token is the number of transitions leaving ``S_t`` and the memory is
``sum_t |S_t|`` per string: a few dozen of the 82,123 chains of the shipped ``layered``
preset, up to every chain emitting the token in very ambiguous grammars (few
terminals, many rules), where the work is that of the sparse mat-vecs. Without numba
the scipy recursion over whole restricted vectors (:func:`posterior_levels_scipy`)
runs instead (the kernel as plain Python is slower on ambiguous grammars); both give
the same values up to rounding (~1e-15 before the float32 cast).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from generators import _jit
from generators._jit import jit
from generators.pcfg import prefix as pcfg_prefix
from generators.pcfg.grammar import Grammar


@lru_cache(maxsize=8)
def _restricted(g: Grammar) -> tuple[tuple[tuple[sp.csr_matrix, ...], ...],
                                      tuple[sp.csr_matrix, ...]]:
    """``step[a][b]``: (n_a, n_b) transitions between chains emitting ``a`` then ``b``;
    ``proj[a]``: (N, n_a) one-hot map from such chains to their ancestors' symbols."""
    c = pcfg_prefix.chains(g)
    V, N = g.n_terminals, g.n_nonterminals
    step = tuple(tuple(c.step_t[a][c.by_token[b]].T.tocsr() for b in range(V))
                 for a in range(V))
    D = c.symbols.shape[0]
    proj = []
    for a in range(V):
        idx = c.by_token[a]
        cols = np.tile(np.arange(len(idx)), D)
        proj.append(sp.csr_matrix((np.ones(D * len(idx)), (c.symbols[:, idx].ravel(), cols)),
                                  shape=(N, len(idx))))
    return step, tuple(proj)


@dataclasses.dataclass(frozen=True, eq=False)
class _Flat:
    """The restricted automaton as flat arrays for :func:`_forward_backward`. Chains
    are numbered per token (``j`` in ``0..n_a-1`` is chain ``by_token[a][j]``); the
    per-chain rows of token ``a`` are ``off[a]:off[a+1]``."""

    off: np.ndarray       # (V+1,) int64 row offsets of each token's chains
    final: np.ndarray     # (n_chains,) float64 [chain may end the string]
    sym: np.ndarray       # (n_chains, D) int32 ancestor symbol at every depth
    st_ptr: np.ndarray    # (V+1,) int64: token a's start chains are st_*[st_ptr[a]:st_ptr[a+1]]
    st_idx: np.ndarray    # int64 chain (numbered within its token) with pi > 0
    st_val: np.ndarray    # float64 pi of that chain
    ip_off: np.ndarray    # (V*V,) int64: pair (a, b)'s CSR row pointers start at ip[ip_off[a*V+b]]
    ip: np.ndarray        # int32 concatenated row pointers (into ind/dat)
    ind: np.ndarray       # int32 target chain (numbered within token b)
    dat: np.ndarray       # float64 transition probability
    layer: np.ndarray     # (N,) int64 depth of each nonterminal
    col: np.ndarray       # (N,) int64 its column within its depth
    width: np.ndarray     # (N,) int64 number of nonterminals at its depth (K_d)
    seg: np.ndarray       # (N,) int64 number of nonterminals at smaller depths


@lru_cache(maxsize=8)
def _flat(g: Grammar) -> _Flat:
    """Flatten ``_restricted(g)`` (cached per grammar). Indices are int32: the kernel
    is bound by cache misses on these tables, and smaller tables miss less."""
    assert g.layer is not None
    c = pcfg_prefix.chains(g)
    step, _ = _restricted(g)
    V = g.n_terminals
    sizes = np.array([len(i) for i in c.by_token])
    order = np.concatenate(c.by_token)
    st = [np.flatnonzero(c.start[i]) for i in c.by_token]
    ip_off = np.zeros(V * V, np.int64)
    ips, inds, dats = [], [], []
    n_ip = nnz = 0
    for a in range(V):
        for b in range(V):
            m = step[a][b]
            ip_off[a * V + b] = n_ip
            ips.append(m.indptr.astype(np.int64) + nnz)
            inds.append(m.indices)
            dats.append(m.data)
            n_ip += len(m.indptr)
            nnz += m.nnz
    if nnz >= 2**31:
        raise ValueError(f"grammar {g.name!r} has {nnz} chain transitions; soft levels "
                         "support fewer than 2**31")
    layer = g.layer.astype(np.int64)
    col = np.array([np.sum(layer[:k] == layer[k]) for k in range(len(layer))], np.int64)
    count = np.bincount(layer)
    width = count[layer].astype(np.int64)
    seg = (np.cumsum(count) - count)[layer].astype(np.int64)
    return _Flat(off=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                 final=c.final[order].astype(np.float64),
                 sym=np.ascontiguousarray(c.symbols[:, order].T, dtype=np.int32),
                 st_ptr=np.concatenate([[0], np.cumsum([len(s) for s in st])]).astype(np.int64),
                 st_idx=np.concatenate(st).astype(np.int64),
                 st_val=np.concatenate([c.start[i][s] for i, s in zip(c.by_token, st,
                                                                      strict=True)]),
                 ip_off=ip_off, ip=np.concatenate(ips).astype(np.int32),
                 ind=np.concatenate(inds).astype(np.int32),
                 dat=np.concatenate(dats).astype(np.float64), layer=layer, col=col,
                 width=width, seg=seg)


@jit
def _forward_backward(x, lengths, off, final, sym, st_ptr, st_idx, st_val, ip_off, ip, ind,
                      dat, seg, width, col, out, err):
    """Soft levels of every string ``x[i, :lengths[i]]`` (validated ids, lengths >= 1)
    (module docstring: forward over the reachable chains, storing each ``alpha_t`` on
    ``S_t``; backward with ``b_t`` on ``S_t``). ``out`` is flat, the ``(n, T, K_d)``
    blocks of the depths one after the other: ``P(ancestor(t) = u | x_i)`` goes to
    ``out[n * T * seg[u] + (i * T + t) * width[u] + col[u]]``.

    ``err`` (3,) is set to ``(i, t, kind)`` and the call returns at the first string
    of probability 0: kind 0 when no chain reaches token ``t``, 1 when no derivation
    ends the string (found at token ``t``)."""
    V = off.shape[0] - 1
    n, T = x.shape
    N = seg.shape[0]
    D = sym.shape[1]
    nmax = 1
    for a in range(V):
        nmax = max(nmax, off[a + 1] - off[a])
    pos = np.full(nmax, -1, np.int64)     # where a chain sits in the step being built
    y = np.zeros(nmax)                    # b_t by chain number (zero off S_t)
    b_cur = np.empty(nmax)
    b_new = np.empty(nmax)
    acc = np.zeros(N)
    t_off = np.empty(T + 1, np.int64)   # S_t is a_idx[t_off[t]:t_off[t+1]]
    cap = nmax + 64                       # room for S_0; grows before each step
    a_idx = np.empty(cap, np.int32)      # chain numbers (< pcfg_prefix.MAX_CHAINS)
    a_val = np.empty(cap)
    for i in range(n):
        m = lengths[i]
        a = x[i, 0]
        k = 0
        t_off[0] = 0
        for q in range(st_ptr[a], st_ptr[a + 1]):
            a_idx[k] = st_idx[q]
            a_val[k] = st_val[q]
            k += 1
        for t in range(m):
            lo, hi = t_off[t], k
            s = 0.0
            for q in range(lo, hi):
                s += a_val[q]
            if not s > 0:
                err[0], err[1], err[2] = i, t, 0
                return
            for q in range(lo, hi):
                a_val[q] /= s
            t_off[t + 1] = hi
            if t + 1 == m:
                break
            if hi + nmax > cap:           # room for a full step
                cap = 2 * (hi + nmax)
                grown_i = np.empty(cap, np.int32)
                grown_v = np.empty(cap)
                grown_i[:hi] = a_idx[:hi]
                grown_v[:hi] = a_val[:hi]
                a_idx, a_val = grown_i, grown_v
            p0 = ip_off[a * V + x[i, t + 1]]
            for q in range(lo, hi):       # alpha_{t+1} = T^T alpha_t, scattered
                v = a_val[q]
                j = p0 + a_idx[q]
                for e in range(ip[j], ip[j + 1]):
                    c = ind[e]
                    if pos[c] < 0:
                        pos[c] = k
                        a_idx[k] = c
                        a_val[k] = 0.0
                        k += 1
                    a_val[pos[c]] += dat[e] * v
            for q in range(hi, k):
                pos[a_idx[q]] = -1
            a = x[i, t + 1]
        lo, hi = t_off[m - 1], t_off[m]
        for q in range(lo, hi):
            b_cur[q - lo] = final[off[a] + a_idx[q]]
        for t in range(m - 1, -1, -1):
            lo, hi = t_off[t], t_off[t + 1]
            a = x[i, t]
            z = 0.0
            for q in range(lo, hi):
                z += a_val[q] * b_cur[q - lo]
            if not z > 0:
                err[0], err[1], err[2] = i, t, 1
                return
            acc[:] = 0.0
            for q in range(lo, hi):
                gam = a_val[q] * b_cur[q - lo] / z
                r = off[a] + a_idx[q]
                for d in range(D):
                    acc[sym[r, d]] += gam
            for u in range(N):
                out[n * T * seg[u] + (i * T + t) * width[u] + col[u]] = acc[u]
            if t == 0:
                break
            for q in range(lo, hi):       # b_{t-1} = T b_t on S_{t-1}
                y[a_idx[q]] = b_cur[q - lo]
            pl = t_off[t - 1]
            p0 = ip_off[x[i, t - 1] * V + a]
            mx = 0.0
            for q in range(pl, lo):
                j = p0 + a_idx[q]
                v = 0.0
                for e in range(ip[j], ip[j + 1]):
                    v += dat[e] * y[ind[e]]
                b_new[q - pl] = v
                mx = max(mx, v)
            for q in range(lo, hi):
                y[a_idx[q]] = 0.0
            if not mx > 0:
                err[0], err[1], err[2] = i, t - 1, 1
                return
            for q in range(lo - pl):
                b_new[q] /= mx
            b_cur, b_new = b_new, b_cur


def _one(g: Grammar, x: np.ndarray) -> np.ndarray:
    """(n, N) posterior symbol marginals of one string ``x`` (n,) of terminal ids."""
    c = pcfg_prefix.chains(g)
    step, proj = _restricted(g)
    n = len(x)
    alphas: list[np.ndarray] = []
    alpha = c.start[c.by_token[x[0]]]
    for t in range(n):
        s = alpha.sum()
        if not s > 0:
            raise ValueError(f"the string has probability 0 under grammar {g.name!r} "
                             f"(no derivation reaches token {t})")
        alphas.append(alpha / s)
        if t + 1 < n:
            alpha = step[x[t]][x[t + 1]].T @ alphas[-1]
    out = np.empty((n, g.n_nonterminals))
    b = c.final[c.by_token[x[-1]]].astype(np.float64)
    for t in range(n - 1, -1, -1):
        gamma = alphas[t] * b
        z = gamma.sum()
        if not z > 0:
            raise ValueError(f"the string has probability 0 under grammar {g.name!r} "
                             "(no derivation ends it)")
        out[t] = proj[x[t]] @ (gamma / z)
        if t:
            b = step[x[t - 1]][x[t]] @ b
            b /= b.max()
    return out


def _check(g: Grammar, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``x`` (n, T) and ``lengths`` (n,) as int64 (errors name the sample)."""
    if g.layer is None:
        raise ValueError(f"soft levels need a layered grammar (every nonterminal at one "
                         f"depth); grammar {g.name!r} is not layered. Use "
                         "generators.pcfg.inference.ancestor_posteriors for expected "
                         "ancestor counts instead")
    x = np.asarray(x)
    lengths = np.asarray(lengths)
    if x.ndim != 2 or lengths.shape != (len(x),):
        raise ValueError(f"x must be (n, T) and lengths (n,), got {x.shape} and {lengths.shape}")
    lengths = lengths.astype(np.int64)
    bad = (x < 0) | (x >= g.n_terminals)
    bad &= np.arange(x.shape[1]) < lengths[:, None]
    bad_row = bad.any(axis=1) | (lengths < 1) | (lengths > x.shape[1])
    if bad_row.any():
        i = int(np.argmax(bad_row))
        raise ValueError(f"sample {i} (length {int(lengths[i])}, row width {x.shape[1]}) is "
                         f"empty or has token ids outside 0..{g.n_terminals - 1}")
    return np.ascontiguousarray(x, dtype=np.int64), lengths


def posterior_levels(g: Grammar, x: np.ndarray, lengths: np.ndarray
                     ) -> tuple[np.ndarray, ...]:
    """Soft levels of a layered grammar: for every nonterminal depth ``d`` (root
    first) a ``(n, T, K_d)`` float32 array, ``[i, t, k] = P(ancestor_d(t) = A_k | x_i)``
    where ``A_k`` is the ``k``-th nonterminal of depth ``d`` (``np.flatnonzero(g.layer
    == d)``); rows sum to 1 over ``k`` on tokens and are 0 on padding.

    ``x`` is (n, T) terminal ids padded with -1 (as sampled), ``lengths`` (n,).
    Compiled forward-backward over the reachable chains (:func:`_forward_backward`)
    with numba, else :func:`posterior_levels_scipy`."""
    x, lengths = _check(g, x, lengths)
    if not _jit.HAVE_NUMBA:  # the kernel as plain Python is slower than scipy's mat-vecs
        return posterior_levels_scipy(g, x, lengths)
    return _posterior_levels_kernel(g, x, lengths, _forward_backward)


def _posterior_levels_kernel(g: Grammar, x: np.ndarray, lengths: np.ndarray, kernel
                             ) -> tuple[np.ndarray, ...]:
    """:func:`posterior_levels` by ``kernel`` (``_forward_backward`` or its
    ``py_func``) on validated int64 inputs."""
    assert g.layer is not None
    f = _flat(g)
    n, T = x.shape
    flat = np.zeros(n * T * len(f.layer), np.float32)
    err = np.full(3, -1, np.int64)
    kernel(x, lengths, f.off, f.final, f.sym, f.st_ptr, f.st_idx, f.st_val, f.ip_off, f.ip,
           f.ind, f.dat, f.seg, f.width, f.col, flat, err)
    if err[0] >= 0:
        i, t = int(err[0]), int(err[1])
        why = (f"no derivation reaches token {t}" if err[2] == 0 else "no derivation ends it")
        raise ValueError(f"sample {i}: the string has probability 0 under grammar "
                         f"{g.name!r} ({why})")
    # one buffer, each depth a C-contiguous (n, T, K_d) view of its own segment
    count = np.bincount(f.layer)
    starts = (np.cumsum(count) - count) * n * T
    return tuple(flat[lo:lo + n * T * k].reshape(n, T, k) for lo, k in zip(starts, count,
                                                                           strict=True))


def posterior_levels_scipy(g: Grammar, x: np.ndarray, lengths: np.ndarray
                           ) -> tuple[np.ndarray, ...]:
    """:func:`posterior_levels` by scipy sparse mat-vecs over whole restricted vectors,
    one string at a time (the fallback without numba, and the reference)."""
    x, lengths = _check(g, x, lengths)
    assert g.layer is not None
    n, T = x.shape
    depths = [np.flatnonzero(g.layer == d) for d in range(int(g.layer.max()) + 1)]
    out = [np.zeros((n, T, len(cols)), np.float32) for cols in depths]
    for i in range(n):
        m = int(lengths[i])
        try:
            post = _one(g, x[i, :m])                     # (m, N)
        except ValueError as e:
            raise ValueError(f"sample {i}: {e}") from None
        for d, cols in enumerate(depths):
            out[d][i, :m] = post[:, cols]
    return tuple(out)


def map_labels(g: Grammar, soft: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Hard labels from :func:`posterior_levels`: per depth the code of the most
    probable ancestor (the nonterminal's id, as in the sampled ``levels``), -1 on
    padding; ties go to the lower id."""
    return tuple(map_labels_at(g, d, p) for d, p in enumerate(soft))


def map_labels_at(g: Grammar, depth: int, soft: np.ndarray) -> np.ndarray:
    """:func:`map_labels` of one depth: ``soft`` (n, T, K_depth) -> (n, T) int32."""
    if g.layer is None:
        raise ValueError(f"grammar {g.name!r} is not layered")
    cols = np.flatnonzero(g.layer == depth)
    if soft.shape[-1] != len(cols):
        raise ValueError(f"soft labels have {soft.shape[-1]} columns; depth {depth} of "
                         f"grammar {g.name!r} has {len(cols)} nonterminals")
    lab = cols[np.argmax(soft, axis=-1)].astype(np.int32)
    lab[soft.sum(axis=-1) == 0] = -1
    return lab
