"""Fast sampling path for layered PCFGs (``Grammar.layer`` not None), used by
:mod:`generators.pcfg`.

In a layered grammar every node at depth ``d < D`` is a nonterminal and every token
is at depth ``D``, so trees grow level by level with no terminal/nonterminal
bookkeeping: children come from packed rule tables by one gather
(``packed[rule_start[r] + rank]``, as in :mod:`generators.rhm`), parents are
``repeat(arange, rule_len)``, each tree's nodes at one depth are one contiguous run
whose start is carried down (``first_{d+1} = child_start[first_d]``), and spans come
from subtree sizes (``np.add.reduceat`` over sibling runs) and parent starts plus
sibling offsets. The random stream and every returned byte equal the general
breadth-first sampler's (:func:`generators.pcfg._grow` + ``_layout``): one uniform per
frontier nonterminal per depth, drawn in the same order, and trees pruned at the same
depth when their pending symbols already exceed ``max_length``.
"""

from __future__ import annotations

import numpy as np

from generators.pcfg_grammar import Grammar


def _signed_dtype(max_value: int) -> np.dtype:
    for dt in (np.int8, np.int16, np.int32):
        if max_value <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.int64)


def grow_layout(g: Grammar, gen: np.random.Generator, n: int, keys: np.ndarray,
                max_length: int | None, n_tokens: int, n_nodes: int,
                n_levels: int) -> tuple[dict[str, np.ndarray], int]:
    """Grow ``n`` candidate trees of the layered grammar ``g`` and lay the accepted
    ones out in the arrays of :mod:`generators.pcfg` (widths ``n_tokens``,
    ``n_nodes``, ``n_levels``); returns the arrays and the number accepted."""
    N, V = g.n_nonterminals, g.n_terminals
    D = int(g.max_depth)                       # depth of every token
    L = g.rule_len.astype(np.int64)            # (n_rules,)
    packed = g.rule_rhs[g.rule_rhs >= 0]       # (sum L,) children, rule-major
    rstart = np.cumsum(L) - L                  # (n_rules,) first child of each rule
    alive = np.ones(n, bool)
    sym = np.zeros(n, np.int32)                # (M_d,) symbols at depth d
    syms: list[np.ndarray] = []
    rules: list[np.ndarray] = []
    owners: list[np.ndarray] = []              # (M_d,) candidate tree of each node
    owner = np.arange(n)
    for d in range(D):
        syms.append(sym)
        owners.append(owner)
        r = np.searchsorted(keys, sym + gen.random(len(sym)), side="right")  # (M_d,)
        if max_length is not None:
            too_long = np.bincount(owner, weights=L[r], minlength=n) > max_length
            if too_long.any():                 # prune dead trees' nodes at every depth
                alive &= ~too_long
                keep = alive[owner]
                sym, owner, r = sym[keep], owner[keep], r[keep]
                syms[-1], owners[-1] = sym, owner
                for k in range(d):
                    kk = alive[owners[k]]
                    syms[k], owners[k], rules[k] = syms[k][kk], owners[k][kk], rules[k][kk]
        lens = L[r]                            # (M_d,)
        cs = np.cumsum(lens)
        # child j of node i: packed[rstart[r_i] + j - (first child index of i)]
        c_sym = packed[np.arange(int(cs[-1]) if len(cs) else 0)
                       + np.repeat(rstart[r] - (cs - lens), lens)]
        owner = np.repeat(owner, lens)
        rules.append(r)
        sym = c_sym
    syms.append(sym)
    owners.append(owner)
    cstart = [np.concatenate([[0], np.cumsum(L[rr])]) for rr in rules]  # (M_d + 1,)
    return _layout(g, syms, rules, cstart, owners, alive, N, V, D, n_tokens, n_nodes,
                   n_levels), int(alive.sum())


def _layout(g: Grammar, syms: list[np.ndarray], rules: list[np.ndarray],
            cstart: list[np.ndarray], owners: list[np.ndarray], alive: np.ndarray, N: int,
            V: int, D: int, T: int, W: int, n_levels: int) -> dict[str, np.ndarray]:
    n = int(alive.sum())
    # first node of each accepted tree at each depth (trees are contiguous, in order)
    first = [np.arange(n + 1)]                 # depth 0: one root per tree
    for d in range(D):
        first.append(cstart[d][first[d]])      # (n + 1,) with the end as sentinel
    cnt = [np.diff(f) for f in first]          # (D+1) x (n,) nodes per tree per depth
    offs = np.cumsum([np.zeros(n, np.int64), *cnt[:-1]], axis=0)  # (D+1, n) BFS offsets
    n_nodes = offs[-1] + cnt[-1]               # (n,)
    # subtree sizes (tokens) bottom-up and starts top-down
    size = [np.ones(len(syms[D]), np.int64)]
    for d in range(D - 1, -1, -1):
        cs = cstart[d]
        size.insert(0, np.add.reduceat(size[0], cs[:-1]) if len(cs) > 1 else
                    np.zeros(0, np.int64))
    start = [np.zeros(n, np.int64)]
    for d in range(D):
        cs = cstart[d]
        lens = np.diff(cs)
        sz = size[d + 1]
        excl = np.cumsum(sz) - sz              # (M_{d+1},) exclusive sums over the depth
        base = start[d] - excl[np.minimum(cs[:-1], max(len(sz) - 1, 0))] if len(sz) else \
            start[d]
        start.append(np.repeat(base, lens) + excl)
    lengths = size[0]                          # (n,)
    code_dt = _signed_dtype(N + V)
    pos_dt = _signed_dtype(max(W, T, n_levels) + 1)
    span_dt = pos_dt if code_dt.itemsize <= pos_dt.itemsize else code_dt
    parent = np.full((n, W), -1, pos_dt)
    rule = np.full((n, W), -1, _signed_dtype(g.n_rules))
    spans = np.full((n, W, 4), -1, span_dt)
    pf, rf, sf = parent.reshape(-1), rule.reshape(-1), spans.reshape(-1, 4)
    row0 = np.arange(n) * W                    # (n,) flat index of each tree's row
    local_prev = np.zeros(0, np.int64)
    for d in range(D + 1):
        # node j of depth d (tree o): flat index o*W + offs[d][o] + j - first[d][o]
        m = len(syms[d])
        dest = np.arange(m) + np.repeat(row0 + offs[d] - first[d][:-1], cnt[d])  # (M_d,)
        if d > 0:
            pf[dest] = np.repeat(local_prev, np.diff(cstart[d - 1]))
        if d < D:
            rf[dest] = rules[d]
        col = np.empty((m, 4), span_dt)
        col[:, 0] = start[d]
        col[:, 1] = start[d] + size[d]
        col[:, 2] = syms[d]
        col[:, 3] = d
        sf[dest] = col
        local_prev = dest - np.repeat(row0, cnt[d])
    tok_fill = np.arange(T)[None, :] < lengths[:, None]          # (n, T)
    lv = np.full((n_levels, n, T), -1, code_dt)
    for d in range(min(D + 1, n_levels)):
        lv[d][tok_fill] = np.repeat(syms[d], size[d])
    x = np.full((n, T), -1, _signed_dtype(V))
    x[tok_fill] = syms[D] - N
    return {"x": x, "levels": lv, "lengths": lengths.astype(pos_dt),
            "n_nodes": n_nodes.astype(pos_dt), "parent": parent, "rule": rule, "spans": spans}
