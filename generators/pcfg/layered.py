"""Fast sampling path for layered PCFGs (``Grammar.layer`` not None), used by
:mod:`generators.pcfg`.

In a layered grammar every node at depth ``d < D`` is a nonterminal and every token
is at depth ``D``, so trees grow level by level with no terminal/nonterminal
bookkeeping. Two compiled kernels (:func:`generators._jit.jit`) do the work:

- :func:`_grow_level` expands one depth of every candidate tree of a round: node ``i``
  takes the first rule ``r`` of its symbol ``A`` with ``key[r] > A + u_i`` (``key`` =
  ``lhs + cumulative probability``, the inverse-CDF draw that
  ``np.searchsorted(keys, A + u, 'right')`` makes), its children are copied from
  packed rule tables, and a tree whose next depth holds more than ``max_length``
  symbols (each yields at least one token) is rejected there. The uniforms ``u`` are
  drawn by the caller, one per frontier node per depth in tree order, exactly as the
  general breadth-first sampler (:func:`generators.pcfg._grow`) draws them, so both
  paths give the same trees and bytes (a test checks this).
- :func:`_layout_trees` writes each accepted tree straight into its rows of the
  output arrays, every output byte once (no fill-then-overwrite, no copies). In
  breadth-first order a tree's nodes at one depth are one contiguous run and the
  children of a depth's nodes are the next depth's nodes in order, so node ``k``'s
  children start where its left neighbour's end; tokens are the depth-``D`` run in
  order, so token ``j`` spans ``[j, j+1)``, and a node spans from its first child's
  start to its last child's end (one bottom-up pass). A token's ancestor at depth
  ``d`` is one parent step up from its ancestor at depth ``d + 1``; at shallow
  depths, where a node covers a long run of tokens, its label is written over its
  span instead.

The sampler returns the same bytes with or without numba (``kernel.py_func`` is the
uncompiled kernel; a test compares them).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from generators._jit import jit
from generators.pcfg.grammar import Grammar


@dataclasses.dataclass(frozen=True)
class _RuleTables:
    rlo: np.ndarray     # (N,) first rule of each lhs
    kpad: np.ndarray    # (N, K-1) float64 keys of each lhs's rules but its last, +inf padded
    rlen: np.ndarray    # (R,) rule lengths
    rhs: np.ndarray     # (R, maxL) int32 children of each rule, padded with 0


def _tables(g: Grammar, keys: np.ndarray) -> _RuleTables:
    """Padded rule tables: ``rule = rlo[A] + #{j : kpad[A, j] <= A + u}`` is the
    first rule of ``A`` whose key exceeds ``A + u`` (its last rule if none does)."""
    N = g.n_nonterminals
    counts = np.bincount(g.rule_lhs, minlength=N)
    rlo = np.cumsum(counts) - counts
    kpad = np.full((N, max(int(counts.max()) - 1, 1)), np.inf)
    for a in range(N):
        kpad[a, :counts[a] - 1] = keys[rlo[a]:rlo[a] + counts[a] - 1]
    return _RuleTables(rlo=rlo.astype(np.int64), kpad=kpad, rlen=g.rule_len.astype(np.int64),
                       rhs=np.maximum(g.rule_rhs, 0).astype(np.int32))


@jit
def _grow_level(rlo, kpad, rlen, rhs, sym, u, first, alive, max_length, rule, child,
                first_next):
    """One depth of every tree (tree ``t``'s nodes are ``sym[first[t]:first[t+1]]``):
    node ``i`` gets its rule in ``rule[i]`` from the uniform ``u[i]``; then each live
    tree appends its nodes' children to ``child`` (runs in ``first_next``), unless
    they outnumber ``max_length`` (>= 0): the tree is then marked dead in ``alive``
    and keeps no children. Returns the number of children."""
    K = kpad.shape[1]
    maxl = rhs.shape[1]
    for i in range(sym.shape[0]):
        s = sym[i]
        v = s + u[i]
        r = rlo[s]
        for j in range(K):                # branch-free count of keys <= A + u
            r += kpad[s, j] <= v
        rule[i] = r
    pos = 0
    first_next[0] = 0
    for t in range(alive.shape[0]):
        if alive[t]:
            cnt = 0
            for i in range(first[t], first[t + 1]):
                cnt += rlen[rule[i]]
            if max_length >= 0 and cnt > max_length:
                alive[t] = False
            else:
                for i in range(first[t], first[t + 1]):
                    r = rule[i]
                    for j in range(maxl):     # copy the padded row, keep rlen[r] of it
                        child[pos + j] = rhs[r, j]
                    pos += rlen[r]
        first_next[t + 1] = pos
    return pos


# Per-tree steps of _layout_trees. They take slices and loop from 0, so that the
# compiler sees non-negative indices (no wrap-around of negative indices) and keeps
# few values live; data-dependent indices are unsigned for the same reason.
# Output rows are 1-D: ``srow[4 * k + q]`` is column ``q`` of node ``k``'s span.

@jit
def _down(sym, rule, k0, rlen, maxl, code, clen, par, rrow):
    """One depth's nodes ``k0, k0 + 1, ...`` (their ``sym``/``rule``): labels, rules,
    child counts, and the parent of each child (``par`` from the first child on).
    Returns the number of children."""
    c = 0
    for p in range(sym.shape[0]):
        r = rule[p]
        code[p] = sym[p]
        rrow[p] = r
        cl = rlen[r]
        clen[p] = cl
        for q in range(maxl):      # fixed count: the next node overwrites the rest
            par[c + q] = k0 + p
        c += cl
    return c


@jit
def _tokens(sym, d, n_nt, code, xrow, rrow, srow):
    """The tokens (token ``p`` is ``sym[p]``): labels, ids, spans ``[p, p + 1)``."""
    for p in range(sym.shape[0]):
        a = sym[p]
        code[p] = a
        xrow[p] = a - n_nt
        rrow[p] = -1
        srow[4 * p] = p
        srow[4 * p + 1] = p + 1
        srow[4 * p + 2] = a
        srow[4 * p + 3] = d


@jit
def _up(d, clen, code, srow, child):
    """Spans of one depth's nodes (``srow``) from their children's (``child``): the
    first child's start to the last child's end."""
    c = 0
    for p in range(clen.shape[0]):
        srow[4 * p] = child[4 * c]
        c += clen[p]
        srow[4 * p + 1] = child[4 * c - 3]
        srow[4 * p + 2] = code[p]
        srow[4 * p + 3] = d


@jit
def _climb(code, par, anc, lrow):
    """One depth up for every token ``p``: ``lrow[p] = code[anc[p]]``,
    ``anc[p] = par[anc[p]]``."""
    for p in range(anc.shape[0]):
        i = anc[p]
        lrow[p] = code[i]
        anc[p] = par[i]


@jit
def _layout_trees(sym, rule, base, first, rlen, maxl, trees, n_nt, row0, x, lv, lengths,
                  n_nodes, parent, rule_out, spans):
    """Write trees ``trees`` (candidate ids) into output rows ``row0, row0 + 1, ...``.

    ``sym``/``rule`` hold every depth's nodes (depth ``d`` from ``base[d]``), tree
    ``t``'s nodes at depth ``d`` are ``first[d, t]:first[d, t+1]`` of that depth;
    ``maxl`` is the longest rule. In breadth-first order the children of a depth's
    nodes are the next depth's nodes in order, so node ``k``'s children start where
    its left neighbour's end. Tokens are the depth-``D`` run in order (token ``j``
    spans ``[j, j+1)``); a node spans from its first child's start to its last
    child's end (bottom up). A token's ancestor at depth ``d`` follows the parent
    pointers up from the token while runs are short; at shallower depths, where
    nodes cover long runs, each node's label is written over its span."""
    D = base.shape[0] - 1
    W = parent.shape[1]
    T = x.shape[1]
    n_lv = lv.shape[0]
    par = np.empty(W + maxl, np.uint32)   # slack: every node writes maxl child slots
    code = np.empty(W, np.int32)
    clen = np.empty(W, np.int32)
    anc = np.empty(T, np.uint32)
    offs = np.empty(D + 2, np.int64)      # breadth-first offset of each depth in the tree
    gofs = np.empty(D + 1, np.int64)      # sym/rule index of the tree's first node per depth
    for j in range(trees.shape[0]):
        t = trees[j]
        row = row0 + j
        offs[0] = 0
        for d in range(D + 1):
            offs[d + 1] = offs[d] + first[d, t + 1] - first[d, t]
            gofs[d] = base[d] + first[d, t]
        m = offs[D + 1]
        o = offs[D]
        n = m - o
        prow = parent[row]
        rrow = rule_out[row]
        srow = spans[row].reshape(4 * W)
        xrow = x[row]
        for d in range(D):                 # top down: rules, labels, parents
            k0, k1, g = offs[d], offs[d + 1], gofs[d]
            _down(sym[g:g + k1 - k0], rule[g:g + k1 - k0], k0, rlen, maxl, code[k0:k1],
                  clen[k0:k1], par[k1:], rrow[k0:k1])
        _tokens(sym[gofs[D]:gofs[D] + n], D, n_nt, code[o:m], xrow, rrow[o:m], srow[4 * o:])
        for d in range(D - 1, -1, -1):     # bottom up: spans from the children's
            k0, k1 = offs[d], offs[d + 1]
            _up(d, clen[k0:k1], code[k0:k1], srow[4 * k0:4 * k1], srow[4 * k1:])
        prow[:m] = par[:m]
        prow[0] = -1
        prow[m:] = -1                      # padding
        rrow[m:] = -1
        srow[4 * m:] = -1
        xrow[n:] = -1
        for d in range(n_lv - 1, D, -1):
            lv[d, row] = -1
        runs = False
        for d in range(D, -1, -1):         # per-token ancestors, root first
            lrow = lv[d, row]
            runs = runs or 4 * (offs[d + 1] - offs[d]) < n
            if runs:                       # long runs: fill each node's span
                for k in range(offs[d], offs[d + 1]):
                    lrow[srow[4 * k]:srow[4 * k + 1]] = code[k]
            elif d == D:
                lrow[:n] = code[o:m]
                anc[:n] = par[o:m]
            else:                          # short runs: one parent step per token
                _climb(code, par, anc[:n], lrow)
            lrow[n:] = -1
        lengths[row] = n
        n_nodes[row] = m


def _unsigned(max_value: int) -> np.dtype:
    return np.dtype(np.uint16 if max_value <= np.iinfo(np.uint16).max else np.uint32)


class LayeredRound:
    """Candidate trees of one round, grown; :meth:`write` lays accepted ones out."""

    def __init__(self, g: Grammar, gen: np.random.Generator, n: int, keys: np.ndarray,
                 max_length: int | None) -> None:
        tb = _tables(g, keys)
        D = int(g.max_depth)                    # depth of every token
        max_len = -1 if max_length is None else int(max_length)
        alive = np.ones(n, np.bool_)
        first = np.empty((D + 1, n + 1), np.int64)
        first[0] = np.arange(n + 1)             # depth 0: one root per tree
        # every depth's nodes in one buffer (pages are only touched as they fill),
        # unsigned: indices the compiler need not check for wrap-around
        sym: np.ndarray = np.empty(n * int(g.max_nodes) + tb.rhs.shape[1],
                       _unsigned(g.n_nonterminals + g.n_terminals))
        rule: np.ndarray = np.empty(len(sym), _unsigned(g.n_rules))  # depth D: unused
        sym[:n] = 0
        base = np.zeros(D + 1, np.int64)
        for d in range(D):
            m, b = int(first[d, n]), int(base[d])
            u = gen.random(m)                   # one uniform per frontier node, tree order
            _grow_level(tb.rlo, tb.kpad, tb.rlen, tb.rhs, sym[b:b + m], u, first[d], alive,
                        max_len, rule[b:b + m], sym[b + m:], first[d + 1])
            base[d + 1] = b + m
        self.sym, self.rule, self.base, self.first = sym, rule, base, first
        self.rlen, self.maxl = tb.rlen, tb.rhs.shape[1]
        self.ids = np.flatnonzero(alive)         # accepted candidates, in order
        self.n = len(self.ids)
        self.n_nt = g.n_nonterminals

    def write(self, out: dict[str, np.ndarray], dst: int, lo: int, hi: int) -> None:
        """Accepted trees ``lo:hi`` of the round into output rows ``dst:dst + hi - lo``."""
        _layout_trees(self.sym, self.rule, self.base, self.first, self.rlen, self.maxl,
                      self.ids[lo:hi], self.n_nt, dst, out["x"], out["levels"], out["lengths"],
                      out["n_nodes"], out["parent"], out["rule"], out["spans"])
