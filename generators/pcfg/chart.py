"""Compiled inside and outside charts in scaled linear space, used by
:mod:`generators.pcfg.inference`.

A few sequences at a time (a tile), over the binarised grammar's binary rules as a
sparse list ``(A, B, C, p)`` (formulas: Baker 1979; Lari & Young 1990; Manning & Schütze 1999,
ch. 11)::

    inside   I(i, i+1) = e_i = s_i U* lex(x_i)
             I(i, j)   = U* a(i, j),  a_A(i, j) = sum_{i<k<j} sum_{A->BC} p I_B(i, k) I_C(k, j)
    outside  O(0, n)   = U*^T e_S (pushed from parents to children, widest first):
             O(i, j)   = U*^T c(i, j), and for each split k of a parent [i, j) and rule
             c_B(i, k) += p O_A(i, j) I_C(k, j),   c_C(k, j) += p O_A(i, j) I_B(i, k)
    posterior P(A spans [i, j) | x) = I_A(i, j) O_A(i, j) / I_S(0, n)

with one scale per token ``s_t = 1 / max_A (U* lex)[A, x_t]`` folded into the token
vectors ``e`` (``I'(i, j) = I(i, j) prod_{i<=t<j} s_t``, ``O'(i, j) = O(i, j)
prod_{t outside [i, j)} s_t``; every split and sibling product then carries the same
scale, as in scaled forward-backward, Rabiner 1989), so ``I' O' / I'_S(0, n)`` is the
posterior. The kernel also returns, per sequence, the smallest positive and the
largest chart entries, from which the caller decides whether a product could have
left the float64 range (and then recomputes that sequence with per-span log scales).
"""

from __future__ import annotations

import numpy as np

from generators._jit import jit


@jit
def inside_outside(e, rule_a, rule_b, rule_c, rule_p, ustar, unary, n_post, post, stats,
                   tile):
    """Charts of every sequence ``b`` of ``e`` (B, n, N) (scaled token vectors).

    ``unary``: apply ``ustar`` (else it is the identity). ``post`` (B, n+1, n+1,
    n_post) receives the posteriors of the first ``n_post`` symbols (zero for empty
    and reversed spans; skipped when ``n_post == 0``, then only the inside pass
    runs). ``stats[b]`` = (scaled P(x), smallest positive inside entry, smallest
    positive outside entry, largest entry); an empty chart gives ``inf`` minima.

    Sequences go ``tile`` at a time, and a tile's charts are stored by symbol, width,
    start and sequence: ``ins[a, w, i * tb + t] = I_a(i, i + w)`` of sequence ``t``.
    For one width ``w`` and split offset ``d``, the left children ``[i, i + d)`` and
    the right children ``[i + d, i + w)`` of all spans ``[i, i + w)`` of the tile are
    then two contiguous runs (the second shifted by ``d * tb``), so each rule's
    update is one long unit-stride loop. Each sequence's sums are taken in the same
    order whatever the tile."""
    B, n, N = e.shape
    R = rule_a.shape[0]
    S = (n + 1) * tile
    ins = np.zeros((N, n + 1, S))
    outs = np.zeros((N, n + 1, S))      # holds c(i, j) until width j - i is reached
    acc = np.zeros((N, S))
    po = np.zeros((R, S))
    for b0 in range(0, B, tile):
        tb = min(tile, B - b0)
        for i in range(n):
            for t in range(tb):
                for a in range(N):
                    ins[a, 1, i * tb + t] = e[b0 + t, i, a]
        for w in range(2, n + 1):
            m = (n - w + 1) * tb            # spans of width w, all sequences of the tile
            acc[:, :m] = 0.0
            for d in range(1, w):
                for r in range(R):
                    left = ins[rule_b[r], d]
                    right = ins[rule_c[r], w - d, d * tb:]
                    out = acc[rule_a[r]]
                    p = rule_p[r]
                    for f in range(m):
                        out[f] += p * left[f] * right[f]
            _closure(acc, ustar, unary, ins[:, w], m, False)
        for t in range(tb):
            lo_i, hi = _extremes(ins, n, tb, t, 0.0)
            stats[b0 + t, 0] = ins[0, n, t]
            stats[b0 + t, 1] = lo_i
            stats[b0 + t, 2] = np.inf
            stats[b0 + t, 3] = hi
        if n_post == 0:
            continue
        outs[:] = 0.0
        for t in range(tb):
            outs[0, n, t] = 1.0
        for w in range(n, 0, -1):
            m = (n - w + 1) * tb
            acc[:, :m] = outs[:, w, :m]
            _closure(acc, ustar, unary, outs[:, w], m, True)
            if w == 1:
                break
            for r in range(R):
                o = outs[rule_a[r], w]
                p = rule_p[r]
                for f in range(m):
                    po[r, f] = p * o[f]
            for d in range(1, w):
                for r in range(R):
                    q = po[r]
                    left_in = ins[rule_b[r], d]
                    left_out = outs[rule_b[r], d]
                    right_in = ins[rule_c[r], w - d, d * tb:]
                    right_out = outs[rule_c[r], w - d, d * tb:]
                    for f in range(m):
                        left_out[f] += q[f] * right_in[f]
                        right_out[f] += q[f] * left_in[f]
        for t in range(tb):
            lo_o, hi = _extremes(outs, n, tb, t, stats[b0 + t, 3])
            stats[b0 + t, 2] = lo_o
            stats[b0 + t, 3] = hi
            z = ins[0, n, t]
            inv = 1.0 / z if z > 0.0 else 0.0
            for i in range(n + 1):
                f = i * tb + t
                for j in range(n + 1):
                    for a in range(n_post):
                        post[b0 + t, i, j, a] = (ins[a, j - i, f] * outs[a, j - i, f] * inv
                                                 if j > i else 0.0)


@jit
def _closure(acc, ustar, unary, out, m, transpose):
    """``out[:, f] = U* acc[:, f]`` (``U*^T`` if ``transpose``) for ``f < m``, or a
    copy without unary rules."""
    N = acc.shape[0]
    for a in range(N):
        for f in range(m):
            out[a, f] = acc[a, f] if not unary else 0.0
    if not unary:
        return
    for a in range(N):
        for c in range(N):
            u = ustar[c, a] if transpose else ustar[a, c]
            if u != 0.0:
                for f in range(m):
                    out[a, f] += u * acc[c, f]


@jit
def _extremes(chart, n, tb, t, hi):
    """Smallest positive entry of sequence ``t``'s spans ``[i, i + w)``,
    ``1 <= w <= n``, and the largest entry (at least ``hi``)."""
    lo = np.inf
    for a in range(chart.shape[0]):
        for w in range(1, n + 1):
            for i in range(n - w + 1):
                v = chart[a, w, i * tb + t]
                if v > 0.0:
                    lo = min(lo, v)
                    hi = max(hi, v)
    return lo, hi
