"""Brute-force enumeration of PCFG derivations (test helper; small grammars only)."""

from __future__ import annotations

import math
from collections import defaultdict
from functools import cache

from generators.pcfg.grammar import Grammar


def enumerate_trees(g: Grammar, max_len: int) -> dict[tuple[int, ...], list[tuple[float, tuple]]]:
    """Every tree with yield length <= max_len: string -> [(prob, nodes)], nodes a sorted
    tuple of (start, end, nonterminal) over all nonterminal nodes."""
    N = g.n_nonterminals

    @cache
    def trees(sym: int, budget: int) -> tuple:
        if budget < 1:
            return ()
        if sym >= N:
            return (((sym - N,), 1.0, ()),)
        out = []
        for r in range(g.n_rules):
            if g.rule_lhs[r] != sym or g.rule_prob[r] == 0:
                continue
            rhs = [int(c) for c in g.rule_rhs[r, :g.rule_len[r]]]
            partial = [((), g.rule_prob[r], ())]
            for idx, c in enumerate(rhs):
                rest = len(rhs) - idx - 1  # each later symbol needs >= 1 token
                new = []
                for y, p, nodes in partial:
                    for cy, cp, cnodes in trees(c, budget - len(y) - rest):
                        off = len(y)
                        shifted = tuple((a + off, b + off, s) for a, b, s in cnodes)
                        new.append((y + cy, p * cp, nodes + shifted))
                partial = [t for t in new if len(t[0]) <= budget]
            for y, p, nodes in partial:
                out.append((y, p, tuple(sorted((*nodes, (0, len(y), sym))))))
        return tuple(out)

    result: dict[tuple[int, ...], list[tuple[float, tuple]]] = defaultdict(list)
    for y, p, nodes in trees(0, max_len):
        result[y].append((p, nodes))
    return dict(result)


def string_probs(g: Grammar, max_len: int) -> dict[tuple[int, ...], float]:
    return {y: math.fsum(p for p, _ in ts) for y, ts in enumerate_trees(g, max_len).items()}
