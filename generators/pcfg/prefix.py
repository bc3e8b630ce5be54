"""Exact next-token distributions for layered PCFGs by a forward pass over ancestor chains.

In a layered grammar (``Grammar.layer`` not None: every nonterminal at one fixed
depth, every terminal at depth ``D``) the state of a left-to-right (leftmost,
top-down) derivation just before token ``t`` is the token's *ancestor chain*
``c = ((r_0, k_0), ..., (r_{D-1}, k_{D-1}))``: at depth ``d`` the rule ``r_d``
expanding the depth-``d`` ancestor and the position ``k_d`` of the next ancestor in
its right-hand side (``rhs(r_d)[k_d] = lhs(r_{d+1})``; ``rhs(r_{D-1})[k_{D-1}]`` is
the token). Every tree is one path of chains, so the grammar is a hidden Markov
model over chains (a finite automaton because the grammar is not recursive):

- start: ``pi(c) = prod_d p(r_d)`` for the chains with every ``k_d = 0``;
- step: from ``c`` let ``d* = max{d : k_d < len(r_d) - 1}`` (the deepest ancestor
  with a later child); the next chain keeps depths ``< d*``, advances ``k_{d*}`` by
  one and expands the new child leftmost: ``T(c, c') = prod_{e > d*} p(r'_e)`` for the
  chains ``c'`` that agree up to depth ``d*`` and have ``k'_e = 0`` below it;
- end: the string ends after ``c`` iff no such ``d*`` exists.

Forward probabilities ``beta_t(c) = P(x_<t, chain c at t)``: ``beta_0 = pi``,
``beta_{t+1} = T^T (beta_t * [emit(c) = x_t])`` (Rabiner 1989 forward recursion on
this chain automaton; it computes the same prefix probabilities as Jelinek &
Lafferty 1991). Then ``P(x_t = a | x_<t) ∝ sum_{emit(c) = a} beta_t(c)`` and
``P(end | x_<t) ∝ P(x_<t) = sum_{emit(c) = x_{t-1}, c final} beta_{t-1}(c)``.
Cost: ``O(n * nnz(T))``, linear in the length (the chart method is cubic).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from generators.pcfg.grammar import Grammar

#: most ancestor chains for the fast path (memory ~ 100 bytes per chain and transition)
MAX_CHAINS = 2_000_000


@dataclasses.dataclass(frozen=True, eq=False)
class Chains:
    """The chain automaton of a layered grammar."""

    start: np.ndarray            # (n_chains,) pi(c)
    final: np.ndarray            # (n_chains,) bool: the string may end after c
    emit: np.ndarray             # (n_chains,) terminal id of c
    by_token: tuple[np.ndarray, ...]        # per terminal a: (n_a,) chains emitting a
    step_t: tuple[sp.csr_matrix, ...]       # per terminal a: (n_chains, n_a) T[emit=a]^T
    symbols: np.ndarray          # (D, n_chains) nonterminal of each chain's depth-d ancestor


def n_chains(g: Grammar) -> int:
    """Number of ancestor chains (root-to-token paths through rule positions)."""
    N = g.n_nonterminals
    count = np.zeros(N + g.n_terminals)
    count[N:] = 1
    for _ in range(N + 1):  # Bellman: a symbol's chains = sum over its rule positions
        per = np.where(g.rule_rhs >= 0, count[np.maximum(g.rule_rhs, 0)], 0.0).sum(axis=1)
        count[:N] = np.bincount(g.rule_lhs, weights=per, minlength=N)
    return int(count[0])


@lru_cache(maxsize=8)
def chains(g: Grammar) -> Chains:
    """Build the chain automaton of the layered grammar ``g`` (cached per grammar)."""
    if g.layer is None:
        raise ValueError(f"grammar {g.name!r} is not layered; use the chart method")
    N, V = g.n_nonterminals, g.n_terminals
    L = g.rule_len
    # items (rule, position), contiguous per lhs (rules are sorted by lhs), positions in order
    item_rule = np.repeat(np.arange(g.n_rules), L)                    # (n_items,)
    item_pos = np.arange(len(item_rule)) - np.repeat(np.cumsum(L) - L, L)
    item_child = g.rule_rhs[item_rule, item_pos]
    cnt = np.bincount(g.rule_lhs[item_rule], minlength=N)
    first = np.cumsum(cnt) - cnt
    D = int(g.max_depth)
    # trie of chain prefixes, depth by depth: node -> item, parent node
    node_item = [np.arange(first[0], first[0] + cnt[0])]
    node_parent = [np.full(cnt[0], -1)]
    for _ in range(1, D):
        ch = item_child[node_item[-1]]                                  # nonterminals here
        c = cnt[ch]
        node_parent.append(np.repeat(np.arange(len(ch)), c))
        rank = np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c)    # position among siblings
        node_item.append(np.repeat(first[ch], c) + rank)
    n = len(node_item[-1])
    anc = [np.arange(n)]                    # anc[d]: (n,) ancestor node at depth d
    for d in range(D - 1, 0, -1):
        anc.insert(0, node_parent[d][anc[0]])
    items = [node_item[d][anc[d]] for d in range(D)]                    # (D) x (n,)
    k = np.stack([item_pos[it] for it in items])                        # (D, n)
    last = np.stack([item_pos[it] == L[item_rule[it]] - 1 for it in items])  # (D, n)
    p = np.stack([g.rule_prob[item_rule[it]] for it in items])          # (D, n)
    # tail[d] = prod_{e > d} p_e (tail[-1 + 1] = all); leftmost below d: all k_e == 0, e > d
    tail = np.ones((D + 1, n))
    for d in range(D - 1, -1, -1):
        tail[d] = tail[d + 1] * p[d]                                    # prod_{e >= d}
    nonzero = np.where((k != 0).any(axis=0), D - 1 - np.argmax((k != 0)[::-1], axis=0), -1)
    pop = np.where((~last).any(axis=0), D - 1 - np.argmax((~last)[::-1], axis=0), -1)  # d*
    T = sp.csr_matrix((n, n))
    for d in range(D):
        src = np.flatnonzero(pop == d)
        tgt = np.flatnonzero(nonzero <= d)               # leftmost leaves of their depth-d node
        n_nodes = len(node_item[d])
        S = sp.csr_matrix((np.ones(len(src)), (src, anc[d][src] + 1)), shape=(n, n_nodes))
        P = sp.csr_matrix((tail[d + 1][tgt], (anc[d][tgt], tgt)), shape=(n_nodes, n))
        T = T + S @ P
    T = T.tocsr()
    emit = item_child[items[-1]] - N
    by_token = tuple(np.flatnonzero(emit == a) for a in range(V))
    step_t = tuple(T[idx].T.tocsr() for idx in by_token)
    start = np.where(nonzero < 0, tail[0], 0.0)
    symbols = np.stack([g.rule_lhs[item_rule[it]] for it in items])   # (D, n)
    return Chains(start=start, final=pop < 0, emit=emit, by_token=by_token, step_t=step_t,
                  symbols=symbols)


def next_token_distributions(g: Grammar, x: np.ndarray) -> np.ndarray:
    """(B, n+1, V+1) ``P(x_t = a | x_<t)`` and the end of string (last column) by the
    chain forward recursion (module docstring); ``x`` (B, n) validated terminal ids."""
    c = chains(g)
    B, n = x.shape
    V = g.n_terminals
    out = np.zeros((B, n + 1, V + 1))
    for b in range(B):
        beta = c.start / c.start.sum()       # (n_chains,) scaled forward probabilities
        end = 0.0
        for t in range(n + 1):
            row = out[b, t]
            row[:V] = np.bincount(c.emit, weights=beta, minlength=V)
            row[V] = end
            s = row.sum()
            row /= s if s > 0 else np.nan
            if t == n:
                break
            a = int(x[b, t])
            sel = beta[c.by_token[a]]        # (n_a,)
            end = float(sel[c.final[c.by_token[a]]].sum())
            beta = c.step_t[a] @ sel
            z = beta.sum() + end
            if z > 0:  # rescale (the conditionals are ratios within one step)
                beta /= z
                end /= z
    return out
