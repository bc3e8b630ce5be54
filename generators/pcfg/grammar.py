"""Probabilistic context-free grammars: parsing, validation, criticality, CNF.

Definitions: ``shared/docs/background.md`` §2.2. A grammar has nonterminals
(index ``0`` is the start symbol), terminals, and rules ``A -> X1 .. Xk [p]``
(``k >= 1``, no empty right-hand sides) whose probabilities sum to 1 for every
left-hand side. Symbols are coded as one integer: nonterminal ``i`` is ``i``,
terminal ``j`` is ``n_nonterminals + j``.

Text form (NLTK-like: terminals are quoted, everything else is a nonterminal)::

    S  -> NP VP [1.0]
    NP -> 'the' N [0.7] | 'a' N [0.3]
    # a comment; alternatives without [p] share the rest uniformly

Dict/JSON/TOML form::

    {"start": "S", "rules": {"S": {"NP VP": 1.0}, "NP": {"'the' N": 0.7, "'a' N": 0.3}}}

Criticality: the expected-offspring matrix ``M[A, B] = sum_r p_r * #B in rhs_r``
(rules ``r`` of ``A``) has spectral radius ``rho``; the expected yield length is
finite iff ``rho < 1`` and then equals ``e_S`` with ``e = (I - M)^-1 t``, ``t[A]``
the expected number of terminals in one expansion of ``A`` (Harris 1963, branching
processes; Chi 1999, "Statistical properties of probabilistic context-free grammars").
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

#: per left-hand side, rule probabilities must sum to 1 within this
PROB_TOL = 1e-9
#: marker starting the names of helper symbols made by binarisation
HELPER = "@"

_TOKEN = re.compile(r"""'[^']*'|"[^"]*"|\[[^\]]*\]|\||[^\s|\[\]'"]+""")


class GrammarError(ValueError):
    """A malformed grammar (the message names the symbol or rule and the fix)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Grammar:
    """A validated PCFG (also the ``World`` of :mod:`generators.pcfg`).

    Attributes:
        nonterminals: names; index 0 is the start symbol.
        terminals: names.
        rule_lhs: (n_rules,) left-hand side of each rule, rules sorted by it.
        rule_rhs: (n_rules, max_rule_len) symbol codes, padded with -1.
        rule_prob: (n_rules,) probabilities.
        name: a label (preset name or file).
        allow_infinite: accept a critical/supercritical grammar (rho >= 1).
    """

    nonterminals: tuple[str, ...]
    terminals: tuple[str, ...]
    rule_lhs: np.ndarray
    rule_rhs: np.ndarray
    rule_prob: np.ndarray
    name: str = "grammar"
    allow_infinite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "nonterminals", tuple(str(s) for s in self.nonterminals))
        object.__setattr__(self, "terminals", tuple(str(s) for s in self.terminals))
        object.__setattr__(self, "rule_lhs", np.asarray(self.rule_lhs, dtype=np.int32))
        object.__setattr__(self, "rule_rhs", np.asarray(self.rule_rhs, dtype=np.int32))
        object.__setattr__(self, "rule_prob", np.asarray(self.rule_prob, dtype=np.float64))
        _validate(self)

    # ------------------------------------------------------------------ sizes
    @property
    def n_nonterminals(self) -> int:
        return len(self.nonterminals)

    @property
    def n_terminals(self) -> int:
        return len(self.terminals)

    @property
    def vocab_size(self) -> int:
        """Number of terminals (the token vocabulary of ``x``)."""
        return len(self.terminals)

    @property
    def n_rules(self) -> int:
        return len(self.rule_lhs)

    @property
    def start(self) -> str:
        return self.nonterminals[0]

    @cached_property
    def rule_len(self) -> np.ndarray:
        """(n_rules,) number of right-hand-side symbols."""
        return (self.rule_rhs >= 0).sum(axis=1).astype(np.int32)

    def symbol_name(self, code: int) -> str:
        n = self.n_nonterminals
        return self.nonterminals[code] if code < n else repr(self.terminals[code - n])

    def rule_text(self, r: int) -> str:
        rhs = " ".join(self.symbol_name(int(c)) for c in self.rule_rhs[r] if c >= 0)
        return f"{self.nonterminals[self.rule_lhs[r]]} -> {rhs} [{float(self.rule_prob[r])!r}]"

    def to_text(self) -> str:
        """The grammar in the text form (parses back to an equal grammar)."""
        return "\n".join(self.rule_text(r) for r in range(self.n_rules)) + "\n"

    # ------------------------------------------------------------ criticality
    @cached_property
    def offspring_matrix(self) -> np.ndarray:
        """(N, N) ``M[A, B]``: expected number of ``B`` in one expansion of ``A``."""
        N = self.n_nonterminals
        M = np.zeros((N, N))
        for k in range(self.rule_rhs.shape[1]):
            c = self.rule_rhs[:, k]
            nt = (c >= 0) & (c < N)
            np.add.at(M, (self.rule_lhs[nt], c[nt]), self.rule_prob[nt])
        return M

    @cached_property
    def spectral_radius(self) -> float:
        return float(np.max(np.abs(np.linalg.eigvals(self.offspring_matrix))))

    @cached_property
    def expected_lengths(self) -> np.ndarray:
        """(N,) expected yield length from each nonterminal (inf when rho >= 1)."""
        N = self.n_nonterminals
        if self.spectral_radius >= 1.0:
            return np.full(N, np.inf)
        t = np.zeros(N)
        term = self.rule_rhs >= N
        np.add.at(t, self.rule_lhs, self.rule_prob * term.sum(axis=1))
        return np.linalg.solve(np.eye(N) - self.offspring_matrix, t)

    @property
    def expected_length(self) -> float:
        return float(self.expected_lengths[0])

    # ------------------------------------------------------------- structure
    @cached_property
    def is_recursive(self) -> bool:
        """Whether some nonterminal can derive itself (so lengths are unbounded)."""
        reach = (self.offspring_matrix > 0).astype(np.int64)
        closure = reach.copy()
        for _ in range(self.n_nonterminals):
            closure = np.minimum(closure + closure @ reach, 1)
        return bool(np.any(np.diag(closure)))

    def _longest(self, leaf: float, combine: str) -> np.ndarray:
        """Per nonterminal, the max over derivations of a size that is ``leaf`` for a
        terminal and ``1 + sum`` (combine='sum') or ``1 + max`` (combine='max') of the
        children; inf for recursive grammars. Bellman iteration, at most N rounds."""
        N = self.n_nonterminals
        if self.is_recursive:
            return np.full(N, np.inf)
        val = np.zeros(N + self.n_terminals)
        val[N:] = leaf
        for _ in range(N + 1):
            child = np.where(self.rule_rhs >= 0, val[np.maximum(self.rule_rhs, 0)], 0.0)
            per_rule = 1 + (child.sum(axis=1) if combine == "sum" else child.max(axis=1))
            new = np.full(N, -np.inf)
            np.maximum.at(new, self.rule_lhs, per_rule)
            if np.array_equal(new, val[:N]):
                break
            val[:N] = new
        return val[:N]

    @cached_property
    def max_length(self) -> float:
        """Longest yield of the start symbol (inf for recursive grammars)."""
        N = self.n_nonterminals
        if self.is_recursive:
            return float("inf")
        val = np.zeros(N + self.n_terminals)
        val[N:] = 1
        for _ in range(N + 1):
            child = np.where(self.rule_rhs >= 0, val[np.maximum(self.rule_rhs, 0)], 0.0)
            new = np.zeros(N)
            np.maximum.at(new, self.rule_lhs, child.sum(axis=1))
            val[:N] = new
        return float(val[0])

    @cached_property
    def min_lengths(self) -> np.ndarray:
        """(N,) shortest yield of each nonterminal (Bellman iteration; finite because
        every nonterminal is productive)."""
        N = self.n_nonterminals
        val = np.full(N + self.n_terminals, np.inf)
        val[N:] = 1
        for _ in range(N + 1):
            child = np.where(self.rule_rhs >= 0, val[np.maximum(self.rule_rhs, 0)], 0.0)
            new = np.full(N, np.inf)
            np.minimum.at(new, self.rule_lhs, child.sum(axis=1))
            if np.array_equal(new, val[:N]):
                break
            val[:N] = new
        return val[:N]

    @cached_property
    def max_depth(self) -> float:
        """Largest depth of a terminal below the root (inf for recursive grammars)."""
        return float(self._longest(0.0, "max")[0])

    @cached_property
    def max_nodes(self) -> float:
        """Most nodes (terminals included) in one tree (inf for recursive grammars)."""
        return float(self._longest(1.0, "sum")[0])

    @cached_property
    def longest_unary_chain(self) -> int:
        """Most consecutive one-child nodes on a path (unary rules, lexical A -> a incl.)."""
        N = self.n_nonterminals
        unary = (self.rule_len == 1) & (self.rule_rhs[:, 0] < N)
        lex = (self.rule_len == 1) & (self.rule_rhs[:, 0] >= N)
        chain = np.zeros(N)
        chain[self.rule_lhs[lex]] = 1
        for _ in range(N + 1):
            new = chain.copy()
            np.maximum.at(new, self.rule_lhs[unary], 1 + chain[self.rule_rhs[unary, 0]])
            chain = new
        return int(chain.max())

    @cached_property
    def layer(self) -> np.ndarray | None:
        """(N,) depth of each nonterminal if every derivation puts it at one fixed depth
        and every terminal at one common depth (a layered grammar), else None."""
        N = self.n_nonterminals
        depth = np.full(N, -1)
        depth[0] = 0
        term_depth: set[int] = set()
        for _ in range(N + 1):
            for r in range(self.n_rules):
                d = depth[self.rule_lhs[r]]
                if d < 0:
                    continue
                for c in self.rule_rhs[r][: self.rule_len[r]]:
                    if c >= N:
                        term_depth.add(int(d) + 1)
                    elif depth[c] < 0:
                        depth[c] = d + 1
                    elif depth[c] != d + 1:
                        return None
        return depth if len(term_depth) == 1 else None

    def param_dict(self) -> dict[str, Any]:
        return {"name": self.name, "n_nonterminals": self.n_nonterminals,
                "n_terminals": self.n_terminals, "n_rules": self.n_rules,
                "spectral_radius": self.spectral_radius,
                "expected_length": self.expected_length}


# ------------------------------------------------------------------- validation

def _validate(g: Grammar) -> None:
    N, V = g.n_nonterminals, g.n_terminals
    if N == 0:
        raise GrammarError("the grammar has no nonterminals; give a start symbol and rules")
    if len(set(g.nonterminals)) != N or len(set(g.terminals)) != V:
        raise GrammarError("symbol names must be unique")
    R = len(g.rule_lhs)
    if g.rule_rhs.ndim != 2 or g.rule_rhs.shape[0] != R or g.rule_prob.shape != (R,):
        raise GrammarError(f"rule arrays disagree: lhs {g.rule_lhs.shape}, rhs {g.rule_rhs.shape},"
                           f" prob {g.rule_prob.shape}")
    if R and (g.rule_lhs.min() < 0 or g.rule_lhs.max() >= N):
        raise GrammarError("rule_lhs holds an index that is not a nonterminal")
    if R and (g.rule_rhs.max() >= N + V or g.rule_rhs.min() < -1):
        raise GrammarError("rule_rhs holds a code that is neither a symbol nor the pad -1")
    if np.any(np.diff(g.rule_lhs) < 0):
        raise GrammarError("rules must be sorted by left-hand side")
    empty = np.flatnonzero(g.rule_rhs[:, 0] < 0) if R else np.zeros(0, np.intp)
    if len(empty):
        raise GrammarError(f"rule {g.nonterminals[g.rule_lhs[empty[0]]]} -> (empty) has an empty "
                           "right-hand side; epsilon rules are not supported, rewrite without")
    bad = np.flatnonzero(~np.isfinite(g.rule_prob) | (g.rule_prob < 0))
    if len(bad):
        raise GrammarError(f"rule {g.rule_text(bad[0])} has probability {g.rule_prob[bad[0]]}; "
                           "probabilities must be finite and non-negative")
    sums = np.bincount(g.rule_lhs, weights=g.rule_prob, minlength=N)
    has = np.bincount(g.rule_lhs, minlength=N) > 0
    for a in range(N):
        if not has[a]:
            where = "the start symbol" if a == 0 else "nonterminal"
            raise GrammarError(f"{where} {g.nonterminals[a]!r} has no rules (undefined); add rules "
                               "for it or quote it if it is a terminal")
        if abs(sums[a] - 1.0) > PROB_TOL:
            raise GrammarError(f"the rules of {g.nonterminals[a]!r} have probabilities summing to "
                               f"{sums[a]:.12g}, not 1 (tolerance {PROB_TOL}); normalise them")
    # reachability from the start symbol (rules of probability 0 count as absent)
    live = g.rule_prob > 0
    reach = np.zeros(N, bool)
    reach[0] = True
    for _ in range(N):
        codes = g.rule_rhs[live & reach[g.rule_lhs]]
        codes = codes[(codes >= 0) & (codes < N)]
        new = reach.copy()
        new[codes] = True
        if np.array_equal(new, reach):
            break
        reach = new
    if not reach.all():
        raise GrammarError(f"nonterminal {g.nonterminals[int(np.argmin(reach))]!r} is unreachable "
                           f"from the start symbol {g.start!r}; remove it or use it in a rule")
    # productivity: can derive a terminal string
    prod = np.zeros(N + V, bool)
    prod[N:] = True
    for _ in range(N + 1):
        ok = live & np.all((g.rule_rhs < 0) | prod[np.maximum(g.rule_rhs, 0)], axis=1)
        new = prod.copy()
        new[g.rule_lhs[ok]] = True
        if np.array_equal(new, prod):
            break
        prod = new
    if not prod[:N].all():
        raise GrammarError(f"nonterminal {g.nonterminals[int(np.argmin(prod[:N]))]!r} is "
                           "non-productive (derives no finite string); give it a terminating rule")
    unary = live & (g.rule_rhs[:, 0] < N) & ((g.rule_rhs[:, 1:] < 0).all(axis=1)
                                             if g.rule_rhs.shape[1] > 1 else True)
    U = np.zeros((N, N), np.int64)
    U[g.rule_lhs[unary], g.rule_rhs[unary, 0]] = 1
    P = U.copy()
    for _ in range(N):
        if np.any(np.diag(P)):
            a = int(np.flatnonzero(np.diag(P))[0])
            raise GrammarError(f"unary cycle through {g.nonterminals[a]!r} (A -> ... -> A by "
                               "one-symbol rules): parse counts would be infinite; remove it")
        P = np.minimum(P @ U, 1)
    if not g.allow_infinite and g.spectral_radius >= 1.0:
        raise GrammarError(f"the expected-offspring matrix has spectral radius "
                           f"{g.spectral_radius:.6g} >= 1: expected length is infinite; lower the "
                           "probabilities of recursive rules or pass allow_infinite=True "
                           "(and sample with max_length)")


# ---------------------------------------------------------------------- parsing

def _is_quoted(tok: str) -> bool:
    return len(tok) >= 2 and tok[0] == tok[-1] and tok[0] in "'\""


def _split_alternatives(text: str, where: str) -> list[tuple[list[str], float | None]]:
    alts: list[tuple[list[str], float | None]] = [([], None)]
    for tok in _TOKEN.findall(text):
        if tok == "|":
            alts.append(([], None))
        elif tok.startswith("["):
            try:
                p = float(tok[1:-1])
            except ValueError:
                raise GrammarError(f"{where}: probability {tok} is not a number") from None
            alts[-1] = (alts[-1][0], p)
        else:
            if alts[-1][1] is not None:
                raise GrammarError(f"{where}: symbol {tok!r} after the probability; write "
                                   "`A -> B C [p] | D [q]`")
            alts[-1][0].append(tok)
    return alts


def from_rules(rules: Sequence[tuple[str, Sequence[str], float | None]], *,
               start: str | None = None, terminals: Sequence[str] = (), name: str = "grammar",
               allow_infinite: bool = False) -> Grammar:
    """Build a grammar from ``(lhs, rhs symbols, probability or None)`` triples.

    Quoted rhs symbols (``'a'``) and names in ``terminals`` are terminals; other rhs
    symbols are nonterminals. Alternatives of one lhs without a probability share
    what the others leave, uniformly.
    """
    if not rules:
        raise GrammarError("the grammar has no rules")
    order: list[str] = []
    for lhs, _, _ in rules:
        if lhs not in order:
            order.append(lhs)
    start = order[0] if start is None else start
    if start not in order:
        raise GrammarError(f"start symbol {start!r} has no rules; add `{start} -> ...` or pick "
                           f"one of {order}")
    term_set = set(terminals)
    nts = [start, *[s for s in order if s != start]]
    terms: list[str] = list(terminals)

    def code_of(sym: str) -> str | tuple[str]:
        if _is_quoted(sym):
            return (sym[1:-1],)
        if sym in term_set and sym not in order:
            return (sym,)
        return sym

    for _, rhs, _ in rules:
        for s in rhs:
            c = code_of(s)
            if isinstance(c, tuple):
                if c[0] not in terms:
                    terms.append(c[0])
            elif c not in nts:
                nts.append(c)  # undefined: validation reports it
    index = {s: i for i, s in enumerate(nts)}
    tindex = {t: len(nts) + j for j, t in enumerate(terms)}
    width = max(len(r[1]) for r in rules) or 1
    by_lhs: dict[str, list[tuple[list[int], float | None]]] = {s: [] for s in nts}
    for lhs, rhs, p in rules:
        codes = [tindex[c[0]] if isinstance(c := code_of(s), tuple) else index[c] for s in rhs]
        by_lhs[lhs].append((codes, None if p is None else float(p)))
    lhs_l, rhs_l, prob_l = [], [], []
    for s in nts:
        alts = by_lhs[s]
        given = sum(p for _, p in alts if p is not None)
        n_free = sum(p is None for _, p in alts)
        for codes, p in alts:
            lhs_l.append(index[s])
            rhs_l.append(codes + [-1] * (width - len(codes)))
            prob_l.append(p if p is not None else (1.0 - given) / n_free)
    return Grammar(nonterminals=tuple(nts), terminals=tuple(terms),
                   rule_lhs=np.array(lhs_l, np.int32),
                   rule_rhs=np.array(rhs_l, np.int32).reshape(len(rhs_l), width),
                   rule_prob=np.array(prob_l), name=name, allow_infinite=allow_infinite)


def parse_text(text: str, *, start: str | None = None, name: str = "grammar",
               allow_infinite: bool = False) -> Grammar:
    """Parse the text form ``A -> B 'c' [0.5] | 'd' [0.5]`` (one lhs per line,
    ``#`` comments, a line starting with ``|`` continues the previous one)."""
    rules: list[tuple[str, Sequence[str], float | None]] = []
    lhs = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"line {lineno} ({raw.strip()!r})"
        if line.startswith("|"):
            if lhs is None:
                raise GrammarError(f"{where}: continuation without a rule before it")
            body = line[1:]
        else:
            if "->" not in line:
                raise GrammarError(f"{where}: expected `A -> B C [p] | ...`")
            lhs, body = (part.strip() for part in line.split("->", 1))
            if not re.fullmatch(r"[^\s|\[\]'\"]+", lhs):
                raise GrammarError(f"{where}: left-hand side {lhs!r} must be one unquoted symbol")
        for syms, p in _split_alternatives(body, where):
            if not syms:
                raise GrammarError(f"{where}: empty alternative; epsilon rules are not "
                                   "supported")
            rules.append((lhs, syms, p))
    return from_rules(rules, start=start, name=name, allow_infinite=allow_infinite)


def from_dict(data: Mapping[str, Any], *, name: str = "grammar",
              allow_infinite: bool = False) -> Grammar:
    """Build from ``{"start": ..., "terminals": [...], "rules": ...}`` where rules is
    ``{lhs: {"rhs text": p, ...}}``, ``{lhs: ["rhs text [p]", ...]}`` or a list of
    ``[lhs, "rhs text" | [symbols], p]``."""
    unknown = set(data) - {"start", "terminals", "rules", "name"}
    if unknown:
        raise GrammarError(f"unknown grammar keys {sorted(unknown)}; allowed: start, terminals, "
                           "rules, name")
    if "rules" not in data:
        raise GrammarError("grammar dict has no 'rules'")
    raw = data["rules"]
    rules: list[tuple[str, Sequence[str], float | None]] = []
    if isinstance(raw, Mapping):
        for lhs, alts in raw.items():
            if isinstance(alts, Mapping):
                for rhs, p in alts.items():
                    rules.append((lhs, _TOKEN.findall(rhs), float(p)))
            else:
                for alt in ([alts] if isinstance(alts, str) else alts):
                    for syms, p in _split_alternatives(alt, f"rule of {lhs!r}"):
                        rules.append((lhs, syms, p))
    else:
        for item in raw:
            lhs, rhs, p = item
            rules.append((lhs, _TOKEN.findall(rhs) if isinstance(rhs, str) else list(rhs), p))
    return from_rules(rules, start=data.get("start"), terminals=data.get("terminals", ()),
                      name=str(data.get("name", name)), allow_infinite=allow_infinite)


def load(path: str | Path, *, allow_infinite: bool = False) -> Grammar:
    """Read a grammar file: ``.json``, ``.toml``, or anything else as the text form."""
    path = Path(path)
    if not path.is_file():
        raise GrammarError(f"grammar file {str(path)!r} does not exist")
    if path.suffix == ".json":
        return from_dict(json.loads(path.read_text()), name=path.stem,
                         allow_infinite=allow_infinite)
    if path.suffix == ".toml":
        return from_dict(tomllib.loads(path.read_text()), name=path.stem,
                         allow_infinite=allow_infinite)
    return parse_text(path.read_text(), name=path.stem, allow_infinite=allow_infinite)
