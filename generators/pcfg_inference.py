"""Exact inference for PCFGs: inside, outside, span posteriors, parse counts,
Viterbi parses and next-token distributions (numpy, log space, batched).

All functions take a :class:`~generators.pcfg_grammar.Grammar` and a batch ``x``
(B, n) of terminal ids of one length ``n``. They work on the binarised grammar
(:func:`~generators.pcfg_cnf.binarize`: binary, unary and lexical rules; trees
in bijection with the original ones), keeping unary rules through the closure
``U* = (I - U)^-1`` (no unary cycles, so every chain is finite). Charts are indexed
by spans ``[i, j)``.

Formulas (Baker 1979; Lari & Young 1990; Manning & Schütze 1999, ch. 11):

- inside ``I_A(i, j) = P(A =>* x[i:j])``: ``I(i, i+1) = U* lex(x_i)``,
  ``I(i, j) = U* sum_k sum_{A->BC} P(A->BC) I_B(i, k) I_C(k, j)``; ``P(x) = I_S(0, n)``.
- outside ``O_A(i, j)``: ``O(0, n) = U*^T e_S``, ``O = U*^T (binary-parent terms)``
  with ``O_B(i, j) += sum O_A(i, k) P(A->BC) I_C(j, k) + sum O_A(k, j) P(A->CB) I_C(k, i)``.
- span posterior ``P(A spans [i, j) | x) = I_A(i, j) O_A(i, j) / P(x)``.
- prefix probability (Jelinek & Lafferty 1991): ``Pre_A(i, n) = P(A =>* x[i:n] v)``
  solves ``Pre(i, n) = LC* R(i, n)`` with the left-corner matrix
  ``LC[A, B] = U[A, B] + sum_C P(A->BC)``, ``R_A(i, n) = [i = n-1] P(A->x_i) +
  sum_{j=i+1}^{n-1} sum P(A->BC) I_B(i, j) Pre_C(j, n)``; then
  ``P(x_t = a | x_<t) ∝ Pre_S(0, t+1)`` with ``x_t = a``, and ``P(end | x_<t) ∝ P(x_<t)``.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from generators.pcfg_cnf import binarize
from generators.pcfg_grammar import Grammar


@dataclasses.dataclass(frozen=True, eq=False)
class Tables:
    """Dense rule tensors of the binarised grammar (``N`` symbols incl. helpers)."""

    grammar: Grammar          # the binarised grammar
    n_orig: int               # original nonterminals are 0..n_orig-1
    lex: np.ndarray           # (N, V) P(A -> a)
    unary: np.ndarray         # (N, N) P(A -> B)
    ustar: np.ndarray         # (N, N) (I - U)^-1
    pbin: np.ndarray          # (N*N, N) P(A -> B C) at [B*N + C, A]
    q_left: np.ndarray        # (N*N, N) P(A -> B C) at [A*N + C, B]
    q_right: np.ndarray       # (N*N, N) P(A -> B C) at [A*N + B, C]
    lcstar: np.ndarray        # (N, N) (I - LC)^-1


@lru_cache(maxsize=32)
def tables(g: Grammar) -> Tables:
    """The rule tensors of ``g`` (cached per grammar object)."""
    b = binarize(g)
    N, V = b.n_nonterminals, b.n_terminals
    lex = np.zeros((N, V))
    unary = np.zeros((N, N))
    P = np.zeros((N, N, N))
    for r in range(b.n_rules):
        a, p, rhs = b.rule_lhs[r], b.rule_prob[r], b.rule_rhs[r, :b.rule_len[r]]
        if len(rhs) == 1 and rhs[0] >= N:
            lex[a, rhs[0] - N] += p
        elif len(rhs) == 1:
            unary[a, rhs[0]] += p
        else:
            P[a, rhs[0], rhs[1]] += p
    ustar = np.linalg.inv(np.eye(N) - unary)
    lc = unary + P.sum(axis=2)
    return Tables(grammar=b, n_orig=g.n_nonterminals, lex=lex, unary=unary, ustar=ustar,
                  pbin=P.transpose(1, 2, 0).reshape(N * N, N),
                  q_left=P.transpose(0, 2, 1).reshape(N * N, N),
                  q_right=P.reshape(N * N, N), lcstar=np.linalg.inv(np.eye(N) - lc))


def _as_batch(g: Grammar, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"x has shape {x.shape}; expected (batch, length) with length >= 1 "
                         "(one length per call: group sequences by length)")
    if x.min() < 0 or x.max() >= g.n_terminals:
        raise ValueError(f"x holds ids outside 0..{g.n_terminals - 1} (padding -1? strip it and "
                         "group sequences by length)")
    return x.astype(np.intp)


def _log(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(a)


def _shift(a: np.ndarray, axis: int | tuple[int, ...] = -1) -> tuple[np.ndarray, np.ndarray]:
    """``exp(a - m)`` and ``m = max over axis`` (0 where the max is -inf)."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.exp(a - m), m


def _logmatmul(a: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """``log(exp(a) @ mat)`` for (..., K) log values and a non-negative (K, J) matrix."""
    e, m = _shift(a)
    return _log(e @ mat) + m


def _logouter_sum(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``log sum_k exp(left[..., k, :, None] + right[..., k, None, :])`` flattened to
    (..., N*N): the sum over split points of outer products, scaled in log space."""
    el, ml = _shift(left)             # (..., K, N), (..., K, 1)
    er, mr = _shift(right)
    s = ml[..., 0] + mr[..., 0]       # (..., K)
    sm = np.max(s, axis=-1, keepdims=True)
    sm = np.where(np.isfinite(sm), sm, 0.0)
    el = el * np.exp(s - sm)[..., None]
    out = np.swapaxes(el, -1, -2) @ er  # (..., N, N)
    return _log(out.reshape(*out.shape[:-2], -1)) + sm


def inside_chart(g: Grammar, x: np.ndarray) -> np.ndarray:
    """(B, n+1, n+1, N) log inside probabilities ``I_A(i, j)`` (helpers included)."""
    t = tables(g)
    x = _as_batch(g, x)
    B, n = x.shape
    N = t.lex.shape[0]
    chart = np.full((B, n + 1, n + 1, N), -np.inf)
    i = np.arange(n)
    chart[:, i, i + 1] = _logmatmul(_log(t.lex.T[x]), t.ustar.T)
    for w in range(2, n + 1):
        i = np.arange(n - w + 1)[:, None]           # (P, 1)
        k = i + np.arange(1, w)[None, :]            # (P, w-1) split points
        pre = _logouter_sum(chart[:, i, k], chart[:, k, i + w])  # (B, P, N*N)
        chart[:, i[:, 0], i[:, 0] + w] = _logmatmul(_logmatmul(pre, t.pbin), t.ustar.T)
    return chart


def log_prob(g: Grammar, x: np.ndarray) -> np.ndarray:
    """(B,) ``log P(x)`` (the inside probability of the start symbol)."""
    chart = inside_chart(g, x)
    return chart[:, 0, -1, 0]


def outside_chart(g: Grammar, x: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """(B, n+1, n+1, N) log outside probabilities ``O_A(i, j)``."""
    t = tables(g)
    x = _as_batch(g, x)
    n = x.shape[1]
    N = t.lex.shape[0]
    ins = inside_chart(g, x) if inside is None else inside
    out = np.full_like(ins, -np.inf)
    e = np.full(N, -np.inf)
    e[0] = 0.0
    out[:, 0, n] = _logmatmul(e, t.ustar)[None]
    for w in range(n - 1, 0, -1):
        i = np.arange(n - w + 1)[:, None]           # (P, 1) span [i, i+w)
        m = np.arange(1, n - w + 1)[None, :]        # (1, M) extension
        # as left child: parent [i, i+w+m), sibling [i+w, i+w+m)
        ok = i + w + m <= n
        hi = np.minimum(i + w + m, n)
        par = np.where(ok[None, ..., None], out[:, i, hi], -np.inf)
        sib = np.where(ok[None, ..., None], ins[:, np.minimum(i + w, n), hi], -np.inf)
        left = _logmatmul(_logouter_sum(par, sib), t.q_left)
        # as right child: parent [i-m, i+w), sibling [i-m, i)
        ok = i - m >= 0
        lo = np.maximum(i - m, 0)
        par = np.where(ok[None, ..., None], out[:, lo, i + w], -np.inf)
        sib = np.where(ok[None, ..., None], ins[:, lo, i], -np.inf)
        right = _logmatmul(_logouter_sum(par, sib), t.q_right)
        obin = np.logaddexp(left, right)            # (B, P, N)
        out[:, i[:, 0], i[:, 0] + w] = _logmatmul(obin, t.ustar)
    return out


def span_posteriors(g: Grammar, x: np.ndarray) -> np.ndarray:
    """(B, n+1, n+1, n_nonterminals) ``P(a node labelled A spans [i, j) | x)`` for the
    original nonterminals (zero for spans with ``j <= i``)."""
    ins = inside_chart(g, x)
    out = outside_chart(g, x, ins)
    n0 = tables(g).n_orig
    logz = ins[:, 0, -1, 0][:, None, None, None]
    with np.errstate(invalid="ignore"):
        post = np.exp(ins[..., :n0] + out[..., :n0] - logz)
    return np.nan_to_num(post)


def parse_counts(g: Grammar, x: np.ndarray) -> list[int]:
    """Exact number of parse trees of each sequence (Python ints, no overflow)."""
    t = tables(g)
    x = _as_batch(g, x)
    N = t.lex.shape[0]
    lex = (t.lex > 0).astype(object)
    ustar = np.eye(N, dtype=object)
    power = np.eye(N, dtype=object)
    U = (t.unary > 0).astype(object)
    for _ in range(N):  # U* = sum_k U^k, finite: unary chains are acyclic
        power = power.dot(U)
        ustar = ustar + power
    pbin = (t.pbin > 0).astype(object)
    result = []
    for seq in x:
        n = len(seq)
        c = np.zeros((n + 1, n + 1, N), dtype=object)
        for i in range(n):
            c[i, i + 1] = ustar.dot(lex[:, seq[i]])
        for w in range(2, n + 1):
            for i in range(n - w + 1):
                acc = np.zeros(N * N, dtype=object)
                for k in range(i + 1, i + w):
                    acc = acc + np.outer(c[i, k], c[k, i + w]).reshape(-1)
                c[i, i + w] = ustar.dot(acc.dot(pbin))
        result.append(int(c[0, n, 0]))
    return result


def viterbi(g: Grammar, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Most probable parse of each sequence: ``(B,)`` log probabilities and, per
    sequence, an (n_nodes, 3) array of (start, end, nonterminal) of its original
    nonterminal nodes, sorted (empty and -inf when ``x`` has no parse)."""
    t = tables(g)
    x = _as_batch(g, x)
    B, n = x.shape
    N = t.lex.shape[0]
    llex, lun, lp = _log(t.lex), _log(t.unary), _log(t.pbin)  # lp (N*N, N)
    best = np.full((B, n + 1, n + 1, N), -np.inf)
    # back pointers: split k (0 = lexical, -1 = none), child pair index, unary child
    split = np.zeros((B, n + 1, n + 1, N), np.int32)
    pair = np.zeros((B, n + 1, n + 1, N), np.int64)
    uchild = np.full((B, n + 1, n + 1, N), -1, np.int64)

    def unary_closure(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        uc = np.full(v.shape, -1, np.int64)
        for _ in range(N):
            cand = v[..., None, :] + lun               # (..., A, B)
            arg = np.argmax(cand, axis=-1)
            val = np.take_along_axis(cand, arg[..., None], -1)[..., 0]
            better = val > v
            if not better.any():
                break
            v = np.where(better, val, v)
            uc = np.where(better, arg, uc)
        return v, uc

    i = np.arange(n)
    best[:, i, i + 1], uchild[:, i, i + 1] = unary_closure(llex.T[x])
    for w in range(2, n + 1):
        i = np.arange(n - w + 1)[:, None]
        k = i + np.arange(1, w)[None, :]
        left, right = best[:, i, k], best[:, k, i + w]       # (B, P, K, N)
        s = (left[..., :, None] + right[..., None, :]).reshape(*left.shape[:-1], N * N)
        sk = s.max(axis=-2)                                  # (B, P, N*N)
        kk = s.argmax(axis=-2)
        cand = sk[..., :, None] + lp                         # (B, P, N*N, N)
        bc = cand.argmax(axis=-2)                            # (B, P, N)
        val = np.take_along_axis(cand, bc[..., None, :], -2)[..., 0, :]
        v, uc = unary_closure(val)
        cols = i[:, 0]
        best[:, cols, cols + w], uchild[:, cols, cols + w] = v, uc
        pair[:, cols, cols + w] = bc
        split[:, cols, cols + w] = cols[None, :, None] + 1 + np.take_along_axis(kk, bc, -1)
    trees = []
    for b in range(B):
        nodes: list[tuple[int, int, int]] = []
        if np.isfinite(best[b, 0, n, 0]):
            stack = [(0, n, 0, True)]
            while stack:
                lo, hi, a, allow_unary = stack.pop()
                if a < t.n_orig:
                    nodes.append((lo, hi, a))
                if allow_unary and uchild[b, lo, hi, a] >= 0:
                    stack.append((lo, hi, int(uchild[b, lo, hi, a]), True))
                    continue
                if hi - lo == 1:
                    continue
                kk_ = int(split[b, lo, hi, a])
                bc_ = int(pair[b, lo, hi, a])
                stack.append((lo, kk_, bc_ // N, True))
                stack.append((kk_, hi, bc_ % N, True))
        trees.append(np.array(sorted(nodes), dtype=np.int64).reshape(-1, 3))
    return best[:, 0, n, 0], trees


def next_token_distributions(g: Grammar, x: np.ndarray) -> np.ndarray:
    """(B, n+1, V+1) exact ``P(x_t = a | x_<t)`` for ``t = 0..n`` (row ``t`` conditions
    on the first ``t`` tokens); the last column is the end of the string. Rows sum to
    1 (the grammar's own law, not conditioned on sampling limits)."""
    t = tables(g)
    x = _as_batch(g, x)
    B, n = x.shape
    N, V = t.lex.shape
    ins = inside_chart(g, x)
    lex_a = _logmatmul(_log(t.lex.T), t.lcstar.T)     # (V, N): Pre(i, i+1) with x_i = a
    # pre[b, i, m, a, C] = log Pre_C(i, i+1+m) with the last token replaced by a
    pre = np.full((B, n + 1, n + 1, V, N), -np.inf)
    for i in range(n, -1, -1):
        pre[:, i, 0] = lex_a[None]
        J = n - i                                      # j = i+1 .. n
        if J == 0:
            continue
        e_in, m_in = _shift(ins[:, i, i + 1:n + 1])    # (B, J, N), (B, J, 1)
        # Pre_C(j, e) for e = i+2 .. n+1: pre[:, j, e-j-1]
        j = np.arange(i + 1, n + 1)[:, None]           # (J, 1)
        e = np.arange(i + 2, n + 2)[None, :]           # (1, E)
        valid = e > j
        prej = np.where(valid[None, ..., None, None], pre[:, j, np.maximum(e - j - 1, 0)],
                        -np.inf)                        # (B, J, E, V, N)
        e_pre, m_pre = _shift(prej)                    # (..., N), (B, J, E, V, 1)
        s = m_in[:, :, None, :] + m_pre[..., 0]        # (B, J, E, V)
        s = np.where(valid[None, ..., None], s, -np.inf)
        sm = np.max(s, axis=1, keepdims=True)
        sm = np.where(np.isfinite(sm), sm, 0.0)
        e_pre = e_pre * np.exp(s - sm)[..., None]
        E = e.shape[1]
        y = np.swapaxes(e_in, 1, 2) @ e_pre.reshape(B, J, E * V * N)  # (B, N_B, E*V*N_C)
        y = y.reshape(B, N, E, V, N).transpose(0, 2, 3, 1, 4).reshape(B, E, V, N * N)
        r = _log(y @ t.pbin) + sm[:, 0, :, :, None]    # (B, E, V, N)
        pre[:, i, 1:E + 1] = _logmatmul(r, t.lcstar.T)
    numer = pre[:, 0, :, :, 0]                         # (B, n+1, V): prefix x_<t then a
    eos = np.concatenate([np.full((B, 1), -np.inf), ins[:, 0, 1:n + 1, 0]], axis=1)
    logits = np.concatenate([numer, eos[..., None]], axis=-1)
    e_, _ = _shift(logits)
    return e_ / e_.sum(axis=-1, keepdims=True)
