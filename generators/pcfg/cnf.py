"""Binarisation and Chomsky normal form for PCFGs, preserving string probabilities.

Binarisation keeps trees in bijection with the original ones (used by exact
inference, :mod:`generators.pcfg.inference`); CNF also removes unary rules through
their closure, which preserves string probabilities but merges unary chains.
"""

from __future__ import annotations

import numpy as np

from generators.pcfg.grammar import HELPER, Grammar, from_rules


def binarize(g: Grammar) -> Grammar:
    """Rules of length >= 3 become chains of binary rules through helper symbols
    (probability 1), and terminals inside rules of length >= 2 get a helper
    preterminal. Unary rules stay. Trees are in bijection with the original ones,
    so every string (and tree) keeps its probability. Original nonterminals keep
    their indices; helpers (names starting with ``@``) follow."""
    N = g.n_nonterminals
    rules: list[tuple[str, list[str], float]] = []
    helpers: dict[tuple[str, ...], str] = {}

    def sym(c: int) -> str:
        return g.nonterminals[c] if c < N else f"'{g.terminals[c - N]}'"

    def pre(c: int) -> str:
        if c < N:
            return g.nonterminals[c]
        key = (f"'{g.terminals[c - N]}'",)
        if key not in helpers:
            helpers[key] = f"{HELPER}{g.terminals[c - N]}"
            rules.append((helpers[key], [key[0]], 1.0))
        return helpers[key]

    def tail_helper(tail: tuple[str, ...]) -> str:
        if len(tail) == 1:
            return tail[0]
        if tail not in helpers:
            helpers[tail] = f"{HELPER}{'_'.join(tail)}"
            rules.append((helpers[tail], [tail[0], tail_helper(tail[1:])], 1.0))
        return helpers[tail]

    originals: list[tuple[str, list[str], float]] = []
    for r in range(g.n_rules):
        codes = [int(c) for c in g.rule_rhs[r, :g.rule_len[r]]]
        lhs, p = g.nonterminals[g.rule_lhs[r]], float(g.rule_prob[r])
        if len(codes) == 1:
            originals.append((lhs, [sym(codes[0])], p))
            continue
        names = [pre(c) for c in codes]
        originals.append((lhs, [names[0], tail_helper(tuple(names[1:]))], p))
    # original nonterminals keep their indices (rules in lhs order); helpers follow
    return from_rules(originals + rules, start=g.start, name=g.name, terminals=g.terminals,
                      allow_infinite=g.allow_infinite)


def to_cnf(g: Grammar) -> Grammar:
    """Chomsky normal form (``A -> B C``, ``A -> 'a'``) with the same string
    probabilities: binarise, then remove unary rules through the closure
    ``U* = (I - U)^-1`` (``P'(A -> rhs) = sum_B U*[A, B] P(B -> rhs)`` over the
    non-unary rules of ``B``; Hopcroft & Ullman ch. 4 with probabilities)."""
    b = binarize(g)
    N = b.n_nonterminals
    unary = (b.rule_len == 1) & (b.rule_rhs[:, 0] < N)
    U = np.zeros((N, N))
    np.add.at(U, (b.rule_lhs[unary], b.rule_rhs[unary, 0]), b.rule_prob[unary])
    Ustar = np.linalg.inv(np.eye(N) - U)
    acc: dict[tuple[int, tuple[int, ...]], float] = {}
    for r in np.flatnonzero(~unary):
        rhs = tuple(int(c) for c in b.rule_rhs[r, :b.rule_len[r]])
        for a in np.flatnonzero(Ustar[:, b.rule_lhs[r]] > 0):
            key = (int(a), rhs)
            acc[key] = acc.get(key, 0.0) + Ustar[a, b.rule_lhs[r]] * b.rule_prob[r]
    # drop symbols no longer reachable (reachable only through unary rules before)
    reach = {0}
    frontier = [0]
    while frontier:
        top = frontier.pop()
        for (lhs, rhs), _ in acc.items():
            if lhs == top:
                for c in rhs:
                    if c < N and c not in reach:
                        reach.add(c)
                        frontier.append(c)

    def name(c: int) -> str:
        return b.nonterminals[c] if c < N else f"'{b.terminals[c - N]}'"

    rules = [(b.nonterminals[a], [name(c) for c in rhs], p)
             for (a, rhs), p in sorted(acc.items()) if a in reach]
    return from_rules(rules, start=g.start, terminals=g.terminals, name=f"{g.name}-cnf",
                      allow_infinite=g.allow_infinite)
