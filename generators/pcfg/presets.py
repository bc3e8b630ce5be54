"""Preset grammars for :mod:`generators.pcfg` (files in ``generators/data/``, or built).

- ``layered``: a fixed-depth, non-recursive grammar in the style of the cfg3 family
  of Allen-Zhu & Li, "Physics of Language Models, Part 1" (2023): one start symbol,
  then levels of 3 nonterminals, 3 terminals, 2-3 rules per symbol, rule lengths 2-3,
  uniform rule probabilities. The shipped file ``pcfg_layered.pcfg`` was written by
  :func:`layered` with its defaults and ``rng=0`` (our construction, not theirs);
  passing ``params`` draws a new one.
- ``dyck``: Dyck-k, ``S -> S S [q] | '(' S ')' [p] | '(' ')' [1-p-q]`` per bracket pair
  (spectral radius ``2q + p``); the shipped file is Dyck-2 with ``p = q = 1/4``.
- ``arithmetic``, ``english``: small hand-written grammars (files).
- ``random_cnf``: random CNF grammars with tunable size and ambiguity.
- ``rhm``: a random hierarchy model written as a PCFG (same strings and probabilities
  as :mod:`generators.rhm`, with one extra start symbol ``S -> class``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from generators import _rng
from generators import rhm as _rhm
from generators.pcfg.grammar import Grammar, GrammarError, from_rules, load

DATA = Path(__file__).parent.parent / "data"
#: presets stored as files in generators/data
FILES = {"layered": "pcfg_layered.pcfg", "dyck": "pcfg_dyck2.pcfg",
         "arithmetic": "pcfg_arithmetic.pcfg", "english": "pcfg_english.pcfg"}
PRESETS = ("layered", "dyck", "arithmetic", "english", "random_cnf", "rhm")


def layered(*, symbols_per_level: tuple[int, ...] = (1, 3, 3, 3, 3, 3), n_terminals: int = 3,
            rules_per_symbol: tuple[int, int] = (2, 3), rule_lengths: tuple[int, int] = (2, 3),
            rng: _rng.RNGLike = None) -> Grammar:
    """A layered grammar: level ``l`` symbols rewrite to ``2-3`` symbols of level
    ``l+1`` (terminals below the last level), every derivation has the same depth
    ``len(symbols_per_level)``; each symbol gets a uniform number of distinct rules
    in ``rules_per_symbol`` with uniform probabilities."""
    gen = _rng.as_generator(rng)
    if any(k < 1 for k in symbols_per_level) or symbols_per_level[0] != 1:
        raise ValueError(f"symbols_per_level={symbols_per_level} must start with 1 (the start "
                         "symbol) and be positive")
    lo, hi = rule_lengths
    if not 1 <= lo <= hi:
        raise ValueError(f"rule_lengths={rule_lengths} must satisfy 1 <= min <= max")
    names = [[f"L{d}_{i}" for i in range(k)] for d, k in enumerate(symbols_per_level)]
    names[0] = ["S"]
    names.append([f"'{chr(ord('a') + j)}'" if n_terminals <= 26 else f"'t{j}'"
                  for j in range(n_terminals)])
    for _ in range(100):
        rules: list[tuple[str, list[str], float | None]] = []
        for d in range(len(symbols_per_level)):
            below = names[d + 1]
            for a in names[d]:
                k = int(gen.integers(rules_per_symbol[0], rules_per_symbol[1] + 1))
                seen: set[tuple[str, ...]] = set()
                while len(seen) < k:
                    length = int(gen.integers(lo, hi + 1))
                    seen.add(tuple(below[i] for i in gen.integers(0, len(below), length)))
                rules += [(a, list(rhs), 1.0 / k) for rhs in sorted(seen)]
        try:
            return from_rules(rules, start="S", name="layered")
        except GrammarError:  # a level symbol never used: redraw
            continue
    raise ValueError("could not draw a layered grammar using every symbol; lower "
                     "symbols_per_level or raise rules_per_symbol")


def dyck(*, k: int = 2, p_nest: float = 0.25, p_concat: float = 0.25,
         allow_infinite: bool = False) -> Grammar:
    """Dyck-k: ``S -> S S [q] | b_i S e_i [p/k] | b_i e_i [(1-p-q)/k]``."""
    if not (k >= 1 and p_nest >= 0 and p_concat >= 0 and p_nest + p_concat < 1):
        raise ValueError(f"dyck needs k >= 1, p_nest, p_concat >= 0 and p_nest + p_concat < 1; "
                         f"got k={k}, p_nest={p_nest}, p_concat={p_concat}")
    pairs = [("(", ")"), ("[", "]"), ("{", "}"), ("<", ">")]
    pairs += [(f"b{i}", f"e{i}") for i in range(len(pairs), k)]
    rules: list[tuple[str, list[str], float | None]] = [("S", ["S", "S"], p_concat)]
    for b, e in pairs[:k]:
        rules.append(("S", [f"'{b}'", "S", f"'{e}'"], p_nest / k))
        rules.append(("S", [f"'{b}'", f"'{e}'"], (1 - p_nest - p_concat) / k))
    return from_rules(rules, name=f"dyck{k}", allow_infinite=allow_infinite)


def random_cnf(*, n_nonterminals: int = 10, n_terminals: int = 10, n_binary: int = 4,
               n_lexical: int = 4, binary_mass: float = 0.4, concentration: float = 1.0,
               rng: _rng.RNGLike = None) -> Grammar:
    """A random CNF grammar: each nonterminal gets ``n_binary`` rules ``A -> B C``
    (total probability ``binary_mass``) and ``n_lexical`` rules ``A -> 'a'``, with
    Dirichlet(``concentration``) weights; more rules per symbol and fewer terminals
    give more ambiguity. ``binary_mass < 1/2`` keeps the spectral radius ``<= 2 *
    binary_mass < 1``; nonterminal ``i > 0`` is reachable through a rule of
    ``i - 1``."""
    gen = _rng.as_generator(rng)
    N, V = n_nonterminals, n_terminals
    if N < 1 or V < 1 or n_lexical < 1 or n_binary < (1 if N > 1 else 0):
        raise ValueError(f"random_cnf needs n_nonterminals, n_terminals, n_lexical >= 1 and "
                         f"n_binary >= 1 when n_nonterminals > 1; got {N}, {V}, {n_lexical}, "
                         f"{n_binary}")
    if not 0 <= binary_mass < 1:
        raise ValueError(f"binary_mass={binary_mass} must be in [0, 1)")
    if n_binary > N * N or n_lexical > V:
        raise ValueError(f"n_binary={n_binary} > {N}^2 or n_lexical={n_lexical} > "
                         f"n_terminals={V}: not enough distinct rules")
    names = ["S", *(f"N{i}" for i in range(1, N))]
    rules: list[tuple[str, list[str], float | None]] = []
    for a in range(N):
        pairs = gen.choice(N * N, size=n_binary, replace=False)
        if a + 1 < N:  # reachability chain
            pairs[0] = (a + 1) * N + int(gen.integers(0, N))
            pairs = np.unique(pairs)
            while len(pairs) < n_binary:
                pairs = np.unique(np.r_[pairs, gen.integers(0, N * N)])
        wb = gen.dirichlet(np.full(len(pairs), concentration)) * binary_mass if len(pairs) \
            else np.zeros(0)
        for (bc, p) in zip(pairs, wb, strict=True):
            rules.append((names[a], [names[bc // N], names[bc % N]], float(p)))
        lex = gen.choice(V, size=n_lexical, replace=False)
        wl = gen.dirichlet(np.full(n_lexical, concentration)) * (1 - binary_mass)
        for t, p in zip(lex, wl, strict=True):
            rules.append((names[a], [f"'t{t}'"], float(p)))
    rules.sort(key=lambda r: names.index(r[0]))
    return from_rules(rules, name="random_cnf", terminals=[f"t{j}" for j in range(V)])


def from_rhm(world: _rhm.World) -> Grammar:
    """The RHM ``world`` as a PCFG: ``S -> c [prior_c]``, then per level ``l`` and
    symbol ``a`` the ``m`` rules ``a -> tuple [p_i]``; level-``L`` symbols are the
    terminals ``0..v-1`` (named ``'0'``...). Unambiguous, like the RHM."""
    L, m = world.n_levels, world.n_synonyms

    def sym(level: int, a: int) -> str:
        if level == 0:
            return f"C{a}"
        return f"'{a}'" if level == L else f"L{level}_{a}"

    rules: list[tuple[str, list[str], float | None]] = [
        ("S", [sym(0, c)], float(world.root_prior[c])) for c in range(world.n_classes)]
    for level, table in enumerate(world.rules):  # table: (n_parents, m, s) of level+1 symbols
        for a in range(table.shape[0]):
            rules += [(sym(level, a), [sym(level + 1, int(c)) for c in table[a, i]],
                       float(world.rule_probs[i])) for i in range(m)]
    # drop zero-prior classes and unused symbols (they would be unreachable)
    used = {"S"}
    for lhs, rhs, p in rules:
        if lhs in used and p:
            used.update(rhs)
    for _ in range(L + 1):
        for lhs, rhs, p in rules:
            if lhs in used and p:
                used.update(rhs)
    rules = [r for r in rules if r[0] in used]
    return from_rules(rules, name="rhm", terminals=[str(j) for j in range(world.vocab_size)])


def build_world(*, preset: str, grammar_file: str | None, params: dict[str, Any] | None,
                allow_infinite: bool, rng: _rng.RNGLike) -> Grammar:
    """Dispatch for :func:`generators.pcfg.make_world`."""
    if grammar_file is not None:
        if params:
            raise ValueError("params apply to presets only; drop them when giving grammar_file")
        return load(grammar_file, allow_infinite=allow_infinite)
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is unknown; choose one of {PRESETS} or give "
                         "grammar_file")
    kw = dict(params or {})
    if preset in FILES and not kw:
        return load(DATA / FILES[preset], allow_infinite=allow_infinite)
    try:
        if preset == "layered":
            return layered(**kw, rng=rng)
        if preset == "dyck":
            return dyck(**kw, allow_infinite=allow_infinite)
        if preset == "random_cnf":
            return random_cnf(**kw, rng=rng)
        if preset == "rhm":
            kw.setdefault("vocab_size", 8)
            kw.setdefault("n_classes", 8)
            kw.setdefault("n_synonyms", 2)
            kw.setdefault("tuple_size", 2)
            kw.setdefault("n_levels", 3)
            return from_rhm(_rhm.make_world(**kw, rng=rng))
    except TypeError as e:
        raise ValueError(f"params={kw} do not fit preset {preset!r}: {e}") from None
    raise ValueError(f"preset {preset!r} takes no params; got {kw}")
