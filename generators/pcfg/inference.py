"""Exact inference for PCFGs: inside, outside, span posteriors, parse counts,
Viterbi parses and next-token distributions (batched over sequences).

``log_prob`` and ``span_posteriors`` run compiled charts in scaled linear space
(:mod:`generators.pcfg.chart`, one scale per token) and redo, one sequence at a
time, any sequence whose chart could leave the float64 range with numpy charts that
carry one log scale per span (``_inside``, ``_outside``; also behind
``inside_chart`` and ``outside_chart``).

All functions take a :class:`~generators.pcfg.grammar.Grammar` and a batch ``x``
(B, n) of terminal ids of one length ``n``. They work on the binarised grammar
(:func:`~generators.pcfg.cnf.binarize`: binary, unary and lexical rules; trees
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

from generators import _jit
from generators.pcfg import chart as pcfg_chart
from generators.pcfg import prefix as pcfg_prefix
from generators.pcfg.cnf import binarize
from generators.pcfg.grammar import Grammar


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


def _weights(s: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """``exp(s - m)`` and ``m = max over axis`` (kept; 0 where every entry is -inf)."""
    m = np.max(s, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.exp(s - m), m


def _norm(v: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rescale linear vectors ``v`` (..., N) with log scales ``scale`` (...) so that
    each vector's maximum is 1; zero vectors get scale -inf."""
    m = v.max(axis=-1)
    ok = m > 0
    safe = np.where(ok, m, 1.0)
    return v / safe[..., None], np.where(ok, scale + np.log(safe), -np.inf)


def _outer_sum(left: np.ndarray, ls: np.ndarray, right: np.ndarray,
               rs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sum_k left[..., k, :, None] * right[..., k, None, :]`` (flattened to N*N) for
    scaled vectors (linear parts (..., K, N), log scales (..., K)); returns the linear
    sum and its log scale (...)."""
    w, m = _weights(ls + rs)
    out = np.swapaxes(left * w[..., None], -1, -2) @ right  # (..., N, N)
    return out.reshape(*out.shape[:-2], -1), m[..., 0]


def _to_log(lin: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return _log(lin) + np.where(np.isfinite(scale), scale, 0.0)[..., None]


def _inside(g: Grammar, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scaled inside chart: linear parts (B, n+1, n+1, N) and log scales (B, n+1, n+1)
    (one scale per span keeps the products of long strings in range)."""
    t = tables(g)
    B, n = x.shape
    N = t.lex.shape[0]
    lin = np.zeros((B, n + 1, n + 1, N))
    sc = np.full((B, n + 1, n + 1), -np.inf)
    i = np.arange(n)
    lin[:, i, i + 1], sc[:, i, i + 1] = _norm(t.lex.T[x] @ t.ustar.T, np.zeros((B, n)))
    for w in range(2, n + 1):
        i = np.arange(n - w + 1)[:, None]           # (P, 1)
        k = i + np.arange(1, w)[None, :]            # (P, w-1) split points
        v, m = _outer_sum(lin[:, i, k], sc[:, i, k], lin[:, k, i + w], sc[:, k, i + w])
        cols = i[:, 0]
        lin[:, cols, cols + w], sc[:, cols, cols + w] = _norm(v @ t.pbin @ t.ustar.T, m)
    return lin, sc


def inside_chart(g: Grammar, x: np.ndarray) -> np.ndarray:
    """(B, n+1, n+1, N) log inside probabilities ``I_A(i, j)`` (helpers included)."""
    return _to_log(*_inside(g, _as_batch(g, x)))


def log_prob(g: Grammar, x: np.ndarray) -> np.ndarray:
    """(B,) ``log P(x)`` (the inside probability of the start symbol): the compiled
    scaled linear chart (:mod:`generators.pcfg.chart`), ``log P = log P' + sum_t log
    max_A (U* lex)[A, x_t]``; sequences whose chart could leave the float64 range use
    the per-span log-scaled chart (as does every sequence without numba)."""
    x = _as_batch(g, x)
    if not _jit.HAVE_NUMBA:  # the kernel as plain Python would be far slower
        lin, sc = _inside(g, x)
        return _log(lin[:, 0, -1, 0]) + np.where(np.isfinite(sc[:, 0, -1]), sc[:, 0, -1], 0.0)
    stats, tok = _linear_charts(g, x, None)
    ok = _in_range(g, stats, outside=False)
    with np.errstate(divide="ignore"):
        out = np.log(stats[:, 0]) + np.log(tok).sum(axis=1)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        lin, sc = _inside(g, x[bad])
        n = x.shape[1]
        out[bad] = _log(lin[:, 0, n, 0]) + np.where(np.isfinite(sc[:, 0, n]), sc[:, 0, n], 0.0)
    return out


def _outside(g: Grammar, x: np.ndarray, lin: np.ndarray,
             sc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scaled outside chart (same layout as :func:`_inside`)."""
    t = tables(g)
    B, n = x.shape
    N = t.lex.shape[0]
    olin = np.zeros_like(lin)
    osc = np.full_like(sc, -np.inf)
    olin[:, 0, n], osc[:, 0, n] = _norm(np.broadcast_to(t.ustar[0], (B, N)), np.zeros(B))
    for w in range(n - 1, 0, -1):
        i = np.arange(n - w + 1)[:, None]           # (P, 1) span [i, i+w)
        m = np.arange(1, n - w + 1)[None, :]        # (1, M) extension
        # as left child: parent [i, i+w+m), sibling [i+w, i+w+m)
        ok = i + w + m <= n
        hi = np.minimum(i + w + m, n)
        lo_s = np.minimum(i + w, n)
        vl, ml = _outer_sum(olin[:, i, hi], np.where(ok, osc[:, i, hi], -np.inf),
                            lin[:, lo_s, hi], np.where(ok, sc[:, lo_s, hi], -np.inf))
        vl = vl @ t.q_left
        # as right child: parent [i-m, i+w), sibling [i-m, i)
        ok = i - m >= 0
        lo = np.maximum(i - m, 0)
        vr, mr = _outer_sum(olin[:, lo, i + w], np.where(ok, osc[:, lo, i + w], -np.inf),
                            lin[:, lo, i], np.where(ok, sc[:, lo, i], -np.inf))
        vr = vr @ t.q_right
        c = np.maximum(ml, mr)
        v = vl * np.exp(ml - c)[..., None] + vr * np.exp(mr - c)[..., None]
        cols = i[:, 0]
        olin[:, cols, cols + w], osc[:, cols, cols + w] = _norm(v @ t.ustar, c)
    return olin, osc


def outside_chart(g: Grammar, x: np.ndarray) -> np.ndarray:
    """(B, n+1, n+1, N) log outside probabilities ``O_A(i, j)``."""
    x = _as_batch(g, x)
    return _to_log(*_outside(g, x, *_inside(g, x)))


#: linear charts are used when no product of chart entries and rule probabilities
#: can come below this (float64 normal range ends at 2.2e-308; margin for sums)
LINEAR_FLOOR = 1e-290
#: memory for the two charts of one tile of sequences (up to 8 sequences per tile)
CHART_BYTES = 64 * 2**20


def _linear_charts(g: Grammar, x: np.ndarray, post: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Run the compiled scaled linear charts (:func:`generators.pcfg.chart.inside_outside`)
    on ``x``; fills ``post`` (B, n+1, n+1, n_orig) with span posteriors when given.
    Returns the kernel's per-sequence stats (B, 4) and the token scales (B, n),
    ``max_A (U* lex)[A, x_t]`` (1 where that is 0)."""
    t = tables(g)
    N = t.lex.shape[0]
    lexu = t.lex.T[x] @ t.ustar.T                          # (B, n, N)
    tok = lexu.max(axis=-1)
    tok = np.where(tok > 0, tok, 1.0)
    e = np.ascontiguousarray(lexu / tok[..., None])
    p3 = t.pbin.reshape(N, N, N)                           # [B, C, A]
    rb, rc, ra = np.nonzero(p3)
    unary = bool(np.any(t.unary))
    stats = np.empty((len(x), 4))
    out = np.zeros((0, 1, 1, 1)) if post is None else post
    n = x.shape[1]
    tile = int(np.clip(CHART_BYTES // (16 * N * (n + 1) ** 2), 1, 8))
    # unsigned rule symbols: indices the compiled kernel need not check for wrap-around
    pcfg_chart.inside_outside(e, ra.astype(np.uint64), rb.astype(np.uint64),
                              rc.astype(np.uint64), p3[rb, rc, ra], t.ustar, unary,
                              0 if post is None else post.shape[-1], out, stats, tile)
    return stats, tok


def _in_range(g: Grammar, stats: np.ndarray, outside: bool) -> np.ndarray:
    """(B,) True where no product of two chart entries and a rule probability (the
    terms the charts are made of) can fall below :data:`LINEAR_FLOOR`, and no entry
    is above ``1e290``."""
    t = tables(g)
    pos = t.pbin[t.pbin > 0]
    p_min = (pos.min() if len(pos) else 1.0) * t.ustar[t.ustar > 0].min()
    lo_i, lo_o, hi = stats[:, 1], stats[:, 2], stats[:, 3]
    lo = np.minimum(lo_i * lo_i, lo_i * lo_o) if outside else lo_i * lo_i
    return (lo * p_min >= LINEAR_FLOOR) & (hi <= 1e290)


def span_posteriors(g: Grammar, x: np.ndarray) -> np.ndarray:
    """(B, n+1, n+1, n_nonterminals) ``P(a node labelled A spans [i, j) | x)`` for the
    original nonterminals (zero for spans with ``j <= i``): compiled scaled linear
    charts; sequences whose chart could leave the float64 range are redone with
    per-span log scales (:func:`_span_posteriors_scaled`, also used for every
    sequence when numba is missing: equal to rounding, and far faster than the
    kernel as plain Python)."""
    if not _jit.HAVE_NUMBA:
        return _span_posteriors_scaled(g, _as_batch(g, x))
    post, ok = _span_posteriors_linear(g, _as_batch(g, x))
    if not ok.all():
        bad = np.flatnonzero(~ok)
        post[bad] = _span_posteriors_scaled(g, _as_batch(g, x)[bad])
    return post


def _span_posteriors_linear(g: Grammar, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posteriors from the linear charts and the (B,) mask of sequences they are exact
    for (the others hold garbage)."""
    B, n = x.shape
    post = np.empty((B, n + 1, n + 1, tables(g).n_orig))
    stats, _ = _linear_charts(g, x, post)
    return post, _in_range(g, stats, outside=True)


def _span_posteriors_scaled(g: Grammar, x: np.ndarray) -> np.ndarray:
    """:func:`span_posteriors` from the per-span log-scaled charts (any length)."""
    n = x.shape[1]
    n0 = tables(g).n_orig
    lin, sc = _inside(g, x)
    olin, osc = _outside(g, x, lin, sc)
    logz = (_log(lin[:, 0, n, 0]) + sc[:, 0, n])[:, None, None]
    with np.errstate(invalid="ignore"):
        scale = np.exp(sc + osc - logz)
    scale = np.where(np.isfinite(scale), scale, 0.0)
    return lin[..., :n0] * olin[..., :n0] * scale[..., None]


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
    1 (the grammar's own law, not conditioned on sampling limits). ``x`` may be any
    prefix of a string of the grammar. Layered grammars (``g.layer`` not None) with at
    most :data:`~generators.pcfg.prefix.MAX_CHAINS` ancestor chains use the linear-time
    chain forward pass of :mod:`generators.pcfg.prefix` (same values); others use the
    prefix-probability chart below (cubic in the length)."""
    x = _as_batch(g, x)
    if g.layer is not None and pcfg_prefix.n_chains(g) <= pcfg_prefix.MAX_CHAINS:
        return pcfg_prefix.next_token_distributions(g, x)
    return _next_token_chart(g, x)


def _next_token_chart(g: Grammar, x: np.ndarray) -> np.ndarray:
    """:func:`next_token_distributions` by Jelinek–Lafferty prefix probabilities."""
    t = tables(g)
    B, n = x.shape
    N, V = t.lex.shape
    lin, sc = _inside(g, x)
    lex_lin, lex_sc = _norm(t.lex.T @ t.lcstar.T, np.zeros(V))  # Pre(i, i+1), x_i = a
    pbin3 = t.pbin.reshape(N, N, N)
    # Pre_C(i, e) (prefix x[i:e], its last token replaced by a): linear parts
    # (B, i, e, V, N) and log scales (B, i, e, V); absolute e keeps the reads slices
    plin = np.zeros((B, n + 1, n + 2, V, N))
    psc = np.full((B, n + 1, n + 2, V), -np.inf)
    for i in range(n, -1, -1):
        plin[:, i, i + 1], psc[:, i, i + 1] = lex_lin, lex_sc
        rows = np.flatnonzero(np.isfinite(sc[:, i, i + 1:n + 1]).any(axis=0))  # spans [i, j)
        if i == n or not len(rows):
            continue
        j = i + 1 + rows                               # (J,) left child ends
        E = n - i                                      # prefix ends e = i+2 .. n+1
        e_in = lin[:, i, j]                            # (B, J, N)
        active = np.flatnonzero(e_in.any(axis=(0, 1)))  # left children that occur
        e_in = e_in[..., active]
        mi = sc[:, i, j]                               # (B, J)
        # entries with e <= j were never written: zero, scale -inf
        pre = plin[:, j, i + 2:]                       # (B, J, E, V, N)
        w, m = _weights(mi[:, :, None, None] + psc[:, j, i + 2:], axis=1)  # (B,J,E,V), (B,1,E,V)
        pre *= w[..., None]
        y = np.swapaxes(e_in, 1, 2) @ pre.reshape(B, len(rows), E * V * N)
        y = y.reshape(B, len(active), E, V, N).transpose(0, 2, 3, 1, 4)
        r = y.reshape(B, E, V, -1) @ pbin3[active].reshape(-1, N)  # (B, E, V, N)
        plin[:, i, i + 2:], psc[:, i, i + 2:] = _norm(r @ t.lcstar.T, m[:, 0])
    numer = _to_log(plin[:, 0, 1:], psc[:, 0, 1:])[..., 0]  # (B, n+1, V): x_<t then a
    t_ = np.arange(1, n + 1)
    eos = np.concatenate([np.full((B, 1), -np.inf),
                          _log(lin[:, 0, t_, 0]) + np.where(np.isfinite(sc[:, 0, t_]),
                                                            sc[:, 0, t_], 0.0)], axis=1)
    logits = np.concatenate([numer, eos[..., None]], axis=-1)
    e_, _ = _weights(logits)
    return e_ / e_.sum(axis=-1, keepdims=True)


def ancestor_posteriors(g: Grammar, x: np.ndarray) -> np.ndarray:
    """(B, n, n_nonterminals) expected number of ancestors labelled ``A`` of each
    token given ``x``: ``sum_{i <= t < j} P(A spans [i, j) | x)``. These are the soft
    probing labels under ambiguity. In a layered grammar (``g.layer`` not None) every
    token has exactly one ancestor per depth, so the columns of the depth-``d`` symbols
    form the distribution ``P(ancestor at depth d = A | x)`` (they sum to 1)."""
    post = span_posteriors(g, x)                       # (B, n+1, n+1, N)
    n = post.shape[1] - 1
    # Q[b, i, t] = sum_{j > t} post[b, i, j]: suffix sums over the span end
    q = np.cumsum(post[:, :, ::-1], axis=2)[:, :, ::-1]  # (B, n+1, n+1, N): sum_{j' >= j}
    t = np.arange(n)
    # token t: starts i <= t, ends j >= t+1
    return np.stack([q[:, :tt + 1, tt + 1].sum(axis=1) for tt in t], axis=1)
