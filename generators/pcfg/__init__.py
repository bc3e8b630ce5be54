"""Probabilistic context-free grammars with exact derivation trees.

Definitions: ``shared/docs/background.md`` §2.2. The world is a
:class:`~generators.pcfg.grammar.Grammar` (a preset, a grammar file, or a random
grammar); grammar parsing and checks live in :mod:`generators.pcfg.grammar`, presets
in :mod:`generators.pcfg.presets`, exact inference in :mod:`generators.pcfg.inference`.

Sampling is breadth first and vectorised over all trees of a block at once: every
round expands the whole frontier (one rule draw per nonterminal by a search in the
per-left-hand-side cumulative probabilities), so there is no Python recursion and
the number of rounds is the tree depth. Nodes of one depth come out left to right;
yield positions follow from subtree sizes (bottom-up sums) and sibling offsets
(top-down exclusive cumulative sums). Layered grammars (``Grammar.layer``) take the
level-by-level path of :mod:`generators.pcfg.layered`: same random stream, same bytes.

Returned arrays (``W`` = node width, ``T`` = token width, both fixed by the world and
the limits so that chunks of a draw have equal shapes)::

    x                   (n, T) terminal ids, padded with -1
    levels[d]           (n, T) symbol code of each token's ancestor at depth d
                        (root first; the token itself at its own depth; -1 deeper
                        than the token and on padding). Codes: nonterminal i -> i,
                        terminal j -> n_nonterminals + j.
    aux["lengths"]      (n,)   number of tokens
    aux["n_nodes"]      (n,)   number of tree nodes (terminals included)
    aux["parent"]       (n, W) parent of each node (breadth-first order, root 0), -1
                        for the root and padding
    aux["rule"]         (n, W) rule id expanding each node, -1 for terminals/padding
    aux["spans"]        (n, W, 4) start, end (exclusive), label code, depth

Samples longer than ``max_length`` tokens or deeper than ``max_depth`` (root depth
0) are rejected and redrawn (the law is the grammar's conditioned on the limits);
the rejection rate is ``meta["rejection_rate"]``.

With ``soft_levels=True`` (layered grammars only) the posterior of every token's
ancestor at every nonterminal depth given the string is added (the probing labels
under ambiguity; :mod:`generators.pcfg.soft`, about 0.4 ms per length-250 string
compiled, 0.1 s without numba)::

    aux["posterior_depth{d}"]  (n, T, K_d) float32 P(ancestor at depth d = k-th
                               depth-d nonterminal | x); 0 on padding
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from generators import _jit, _rng
from generators.base import HierarchicalSample, concat
from generators.pcfg import soft as pcfg_soft
from generators.pcfg.grammar import Grammar, GrammarError
from generators.pcfg.layered import LayeredRound
from generators.pcfg.presets import build_world

NAME = "pcfg"
World = Grammar


@dataclasses.dataclass(frozen=True)
class Config:
    """Parameters of a PCFG dataset (``make_world`` and ``sample`` keywords).

    ``preset`` is one of :data:`generators.pcfg.presets.PRESETS`; ``grammar_file``
    (text, .json or .toml) overrides it; ``params`` are the preset's keywords.
    """

    preset: str = "layered"
    grammar_file: str | None = None
    params: dict[str, Any] | None = None
    allow_infinite: bool = False
    max_length: int | None = None
    max_depth: int | None = None
    soft_levels: bool = False


def make_world(*, preset: str = "layered", grammar_file: str | None = None,
               params: dict[str, Any] | None = None, allow_infinite: bool = False,
               rng: _rng.RNGLike = None) -> Grammar:
    """The grammar: ``grammar_file`` if given, else the ``preset`` built with
    ``params`` (random presets draw from ``rng``)."""
    return build_world(preset=preset, grammar_file=grammar_file, params=params,
                       allow_infinite=allow_infinite, rng=rng)


# ----------------------------------------------------------------------- widths

def _signed_dtype(max_value: int) -> np.dtype:
    for dt in (np.int8, np.int16, np.int32):
        if max_value <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.int64)


#: deepest level set implied by max_length alone (deeper needs an explicit max_depth)
MAX_IMPLIED_DEPTH = 256


@dataclasses.dataclass(frozen=True)
class _Widths:
    tokens: int
    nodes: int
    levels: int


def _widths(g: Grammar, max_length: int | None, max_depth: int | None) -> _Widths:
    """Fixed array widths: exact maxima for non-recursive grammars, else bounds from
    the limits (a tree with ``L`` leaves has at most ``L - 1`` branching nodes and
    unary runs of at most ``c`` nodes above each of its ``2L - 1`` other nodes)."""
    if max_length is not None and (isinstance(max_length, bool) or max_length < 1):
        raise ValueError(f"max_length={max_length} must be a positive integer or None")
    if max_depth is not None and (isinstance(max_depth, bool) or max_depth < 1):
        raise ValueError(f"max_depth={max_depth} must be a positive integer or None")
    if max_length is not None and g.min_lengths[0] > max_length:
        raise ValueError(f"max_length={max_length} is below the shortest string of grammar "
                         f"{g.name!r} ({int(g.min_lengths[0])} tokens); raise it")
    if not g.is_recursive:
        tokens = int(g.max_length) if max_length is None else min(int(g.max_length), max_length)
        nodes = int(g.max_nodes)
        depth = int(g.max_depth) if max_depth is None else min(int(g.max_depth), max_depth)
    else:
        if max_length is None:
            raise ValueError(f"grammar {g.name!r} is recursive (unbounded length): pass "
                             "max_length so that every sample fits fixed-width arrays")
        c = g.longest_unary_chain
        tokens = max_length
        nodes = (2 * max_length - 1) * (1 + c)
        depth = (max_length - 1) + max_length * c
        if max_depth is not None:
            depth = min(depth, max_depth)
        elif depth > MAX_IMPLIED_DEPTH:
            raise ValueError(f"grammar {g.name!r} is recursive and max_length={max_length} "
                             f"allows trees {depth} deep (one level array per depth): pass "
                             f"max_depth (at most {MAX_IMPLIED_DEPTH} without asking)")
    return _Widths(tokens=tokens, nodes=nodes, levels=depth + 1)


# --------------------------------------------------------------------- sampling

@dataclasses.dataclass
class _Trees:
    """Flat node arrays of accepted trees, breadth first, grouped by depth."""

    sym: np.ndarray     # (n_nodes_total,) symbol code
    owner: np.ndarray   # (n_nodes_total,) sample index (accepted samples, 0..n-1)
    parent: np.ndarray  # (n_nodes_total,) global parent index, -1 at roots
    rule: np.ndarray    # (n_nodes_total,) rule id, -1 at terminals
    depth: np.ndarray   # (n_nodes_total,)
    bounds: np.ndarray  # (n_depths + 1,) node index where each depth starts
    n: int


def _rule_keys(g: Grammar) -> np.ndarray:
    """(n_rules,) ``lhs + cumulative probability within lhs`` (the last rule of
    each lhs exactly ``lhs + 1``): ``searchsorted(keys, A + u, 'right')`` draws a
    rule of ``A`` for ``u ~ U[0, 1)``."""
    cum = np.zeros(g.n_rules)
    for a in range(g.n_nonterminals):
        sel = np.flatnonzero(g.rule_lhs == a)
        c = np.cumsum(g.rule_prob[sel])
        c /= c[-1]
        cum[sel] = c
    return g.rule_lhs + cum


def _grow(g: Grammar, gen: np.random.Generator, n: int, max_length: int | None,
          max_depth: int | None) -> tuple[_Trees, np.ndarray]:
    """Grow ``n`` candidate trees breadth first; returns the accepted trees and
    the (n,) acceptance mask."""
    N = g.n_nonterminals
    keys = _rule_keys(g)
    last_rule = np.cumsum(np.bincount(g.rule_lhs, minlength=N)) - 1
    rule_rhs, rule_len = g.rule_rhs, g.rule_len
    alive = np.ones(n, bool)
    n_term = np.zeros(n, np.int64)
    sym = np.zeros(n, np.int32)
    owner = np.arange(n, dtype=np.int64)
    parent = np.full(n, -1, np.int64)
    levels: list[tuple[np.ndarray, ...]] = []
    offset = 0
    depth = 0
    while len(sym):
        is_nt = sym < N
        nt = np.flatnonzero(is_nt)
        rule = np.full(len(sym), -1, np.int32)
        levels.append((sym, owner, parent, rule))
        if not len(nt):
            break
        if max_depth is not None and depth >= max_depth:
            alive[owner[nt]] = False
            break
        r = np.searchsorted(keys, sym[nt] + gen.random(len(nt)), side="right")
        r = np.minimum(r, last_rule[sym[nt]]).astype(np.int32)  # A + u may round up to A + 1
        rule[nt] = r
        lens = rule_len[r]
        kids = rule_rhs[r]                        # (n_nt, max_rule_len)
        c_sym = kids[kids >= 0]                   # row-major: siblings contiguous, in order
        c_owner = np.repeat(owner[nt], lens)
        c_parent = np.repeat(offset + nt, lens)
        if max_length is not None:
            is_t = c_sym >= N
            n_term += np.bincount(c_owner[is_t], minlength=n)
            pending = np.bincount(c_owner[~is_t], minlength=n)
            alive &= n_term + pending <= max_length  # each pending symbol yields >= 1 token
            keep = alive[c_owner]
            c_sym, c_owner, c_parent = c_sym[keep], c_owner[keep], c_parent[keep]
        offset += len(sym)
        sym, owner, parent = c_sym.astype(np.int32), c_owner, c_parent
        depth += 1
    sizes = np.array([len(lv[0]) for lv in levels])
    flat = [np.concatenate([lv[k] for lv in levels]) for k in range(4)]
    d = np.repeat(np.arange(len(levels)), sizes)
    keep = alive[flat[1]]
    new_id = np.cumsum(keep) - 1
    bounds = np.concatenate([[0], np.cumsum(keep)[np.cumsum(sizes) - 1]]) if len(sizes) else \
        np.zeros(1, np.int64)
    sid = np.cumsum(alive) - 1
    par = flat[2][keep]
    par = np.where(par >= 0, new_id[np.maximum(par, 0)], -1)
    trees = _Trees(sym=flat[0][keep], owner=sid[flat[1][keep]], parent=par, rule=flat[3][keep],
                   depth=d[keep], bounds=bounds, n=int(alive.sum()))
    return trees, alive


def _layout(g: Grammar, t: _Trees, w: _Widths) -> dict[str, np.ndarray]:
    """Spans, breadth-first local indices and padded per-sample arrays."""
    N = g.n_nonterminals
    n_tot = len(t.sym)
    size = (t.sym >= N).astype(np.int64)
    nb = len(t.bounds) - 1
    for k in range(nb - 1, 0, -1):  # bottom-up subtree sizes (leaf counts)
        lo, hi = t.bounds[k], t.bounds[k + 1]
        plo, phi = t.bounds[k - 1], t.bounds[k]
        if hi > lo:
            size[plo:phi] += np.bincount(t.parent[lo:hi] - plo, weights=size[lo:hi],
                                         minlength=phi - plo).astype(np.int64)
    start = np.zeros(n_tot, np.int64)
    for k in range(1, nb):  # top-down starts: parent start + earlier siblings' sizes
        lo, hi = t.bounds[k], t.bounds[k + 1]
        if hi == lo:
            continue
        p = t.parent[lo:hi]
        sz = size[lo:hi]
        excl = np.cumsum(sz) - sz
        first = np.r_[True, p[1:] != p[:-1]]
        grp = np.cumsum(first) - 1
        start[lo:hi] = start[p] + excl - excl[first][grp]
    counts = np.bincount(t.owner, minlength=t.n)
    if counts.size and counts.max() > w.nodes:
        raise RuntimeError(f"a tree has {counts.max()} nodes, more than the width {w.nodes}")
    n = t.n
    # per-sample breadth-first order = sort by owner (stable); padded rows are then
    # filled in order through a boolean mask (sequential writes, no scatter)
    order = np.argsort(t.owner, kind="stable")
    local = np.empty(n_tot, np.int64)
    local[order] = np.arange(n_tot) - np.repeat(np.cumsum(counts) - counts, counts)
    fill = np.arange(w.nodes)[None, :] < counts[:, None]  # (n, W)
    dts = _dtypes(g, w)
    code_dt, pos_dt, span_dt = dts["levels"], dts["parent"], dts["spans"]

    def padded(values: np.ndarray, dt: np.dtype) -> np.ndarray:
        out = np.full((n, w.nodes), -1, dt)
        out[fill] = values[order]
        return out

    parent = padded(np.where(t.parent >= 0, local[np.maximum(t.parent, 0)], -1), pos_dt)
    rule = padded(t.rule, dts["rule"])
    spans = np.full((4, n, w.nodes), -1, span_dt)
    for k, col in enumerate((start, start + size, t.sym, t.depth)):
        spans[k][fill] = col[order]
    spans = np.ascontiguousarray(np.moveaxis(spans, 0, -1))  # (n, W, 4)
    roots = np.flatnonzero(t.parent < 0)
    lengths = np.zeros(n, np.int64)
    lengths[t.owner[roots]] = size[roots]
    tok_fill = np.arange(w.tokens)[None, :] < lengths[:, None]  # (n, T)
    base = t.owner * w.tokens + start  # (n_tot,) flat token index of each node's first token
    lv = np.full((w.levels, n, w.tokens), -1, code_dt)
    n_tokens = int(lengths.sum())
    for k in range(min(nb, w.levels)):  # depth k: nodes cover disjoint, increasing token runs
        lo, hi = t.bounds[k], t.bounds[k + 1]
        sz = size[lo:hi]
        labels = np.repeat(t.sym[lo:hi], sz)
        if labels.size == n_tokens:  # every token covered (always so in layered grammars)
            lv[k][tok_fill] = labels
        else:
            first = np.repeat(base[lo:hi] - (np.cumsum(sz) - sz), sz)
            lv[k].reshape(-1)[first + np.arange(first.size)] = labels
    x = np.full((n, w.tokens), -1, dts["x"])
    leaf_sym = lv.max(axis=0)  # the token itself has the largest code on its path
    x[tok_fill] = leaf_sym[tok_fill] - N
    return {"x": x, "levels": lv, "lengths": lengths.astype(pos_dt),
            "n_nodes": counts.astype(pos_dt), "parent": parent, "rule": rule, "spans": spans}


#: most candidate rounds per block before giving up (acceptance would be < 1/64)
MAX_ROUNDS = 64


def _dtypes(g: Grammar, w: _Widths) -> dict[str, np.dtype]:
    """Output dtypes: the narrowest signed integers holding each array's values."""
    code_dt = _signed_dtype(g.n_nonterminals + g.n_terminals)
    pos_dt = _signed_dtype(max(w.nodes, w.tokens, w.levels) + 1)
    span_dt = pos_dt if code_dt.itemsize <= pos_dt.itemsize else code_dt
    return {"x": _signed_dtype(g.n_terminals), "levels": code_dt, "lengths": pos_dt,
            "n_nodes": pos_dt, "parent": pos_dt, "rule": _signed_dtype(g.n_rules),
            "spans": span_dt}


def _alloc(g: Grammar, w: _Widths, n: int) -> dict[str, np.ndarray]:
    """Uninitialised output arrays for ``n`` samples (writers fill every entry)."""
    dt = _dtypes(g, w)
    shapes = {"x": (n, w.tokens), "levels": (w.levels, n, w.tokens), "lengths": (n,),
              "n_nodes": (n,), "parent": (n, w.nodes), "rule": (n, w.nodes),
              "spans": (n, w.nodes, 4)}
    return {k: np.empty(shape, dt[k]) for k, shape in shapes.items()}


class _ArrayRound:
    """A round of the general sampler, laid out already: :meth:`write` copies rows."""

    def __init__(self, arrs: dict[str, np.ndarray], n: int) -> None:
        self.arrs, self.n = arrs, n

    def write(self, out: dict[str, np.ndarray], dst: int, lo: int, hi: int) -> None:
        for k, v in self.arrs.items():
            if k == "levels":
                out[k][:, dst:dst + hi - lo] = v[:, lo:hi]
            else:
                out[k][dst:dst + hi - lo] = v[lo:hi]


@dataclasses.dataclass
class _Block:
    """The first ``BLOCK_SIZE`` accepted trees of a block, spread over its rounds."""

    rounds: list[_ArrayRound | LayeredRound]
    drawn: int
    accepted: int

    def write(self, out: dict[str, np.ndarray], dst: int, lo: int, hi: int) -> None:
        """Block rows ``lo:hi`` into output rows ``dst:dst + hi - lo``."""
        first = 0
        for rd in self.rounds:
            a, b = max(lo, first), min(hi, first + rd.n)
            if a < b:
                rd.write(out, dst + a - lo, a - first, b - first)
            first += rd.n


def _block(g: Grammar, ss: np.random.SeedSequence, b: int, w: _Widths,
           max_length: int | None, max_depth: int | None) -> _Block:
    """Block ``b``: the first ``BLOCK_SIZE`` accepted trees of its candidate stream
    (drawn whole, so its bytes do not depend on chunking), with the number of
    candidates drawn and the number accepted among them."""
    gen = _rng.block_generator(ss, b)
    bs = _rng.BLOCK_SIZE
    rounds: list[_ArrayRound | LayeredRound] = []
    got = drawn = 0
    size = bs
    # the compiled level-by-level path; without numba the numpy breadth-first path
    # (same bytes) is far faster than the kernels as plain Python
    layered = (_jit.HAVE_NUMBA and g.layer is not None
               and (max_depth is None or max_depth >= g.max_depth))
    keys = _rule_keys(g)
    for _ in range(MAX_ROUNDS):
        rd: _ArrayRound | LayeredRound
        if layered:  # same stream and bytes, level-by-level compiled path
            rd = LayeredRound(g, gen, size, keys, max_length)
        else:
            trees, _ = _grow(g, gen, size, max_length, max_depth)
            rd = _ArrayRound(_layout(g, trees, w), trees.n)
        drawn += size
        rounds.append(rd)
        got += rd.n
        if got >= bs:
            break
        # next round: the expected shortfall at the observed acceptance, with 10% + 64 spare
        size = int(min(bs, (bs - got) * 1.1 * drawn / max(got, 1) + 64))
    else:
        raise RuntimeError(f"only {got} of {drawn} trees of grammar {g.name!r} met max_length="
                           f"{max_length}, max_depth={max_depth}; raise the limits")
    return _Block(rounds, drawn, got)


def _meta(g: Grammar, ss: np.random.SeedSequence, max_length: int | None,
          max_depth: int | None, drawn: int, accepted: int, w: _Widths) -> dict[str, Any]:
    return {
        "generator": NAME, "params": g.param_dict(), "grammar": g.to_text(),
        "max_length": max_length, "max_depth": max_depth, "block_size": _rng.BLOCK_SIZE,
        "seed_entropy": _rng.seed_entropy(ss),
        "rejection_rate": 0.0 if drawn == 0 else 1.0 - accepted / drawn,
        "widths": dataclasses.asdict(w),
        "layout": "levels[d][i, t]: code of token t's ancestor at depth d (-1 deeper than the "
                  "token); codes: nonterminal i -> i, terminal j -> n_nonterminals + j",
    }


def _assemble(g: Grammar, arrs: dict[str, np.ndarray], meta: dict[str, Any]) -> HierarchicalSample:
    names = tuple(f"depth{d}" for d in range(arrs["levels"].shape[0]))
    aux = {k: arrs[k] for k in ("lengths", "n_nodes", "parent", "rule", "spans")}
    return HierarchicalSample(x=arrs["x"], levels=tuple(arrs["levels"]), level_names=names,
                              world=g, meta=meta, aux=aux)


def _check_world(g: Any, max_length: int | None) -> Grammar:
    if not isinstance(g, Grammar):
        raise TypeError(f"world must be a pcfg Grammar (from pcfg.make_world), got {type(g)}")
    if g.spectral_radius >= 1.0 and max_length is None:
        raise GrammarError(f"grammar {g.name!r} has spectral radius {g.spectral_radius:.4g} >= 1; "
                           "sampling needs max_length")
    return g


def iter_chunks(world: Grammar, n_samples: int, *, rng: _rng.RNGLike = None,
                chunk_size: int = _rng.BLOCK_SIZE, max_length: int | None = None,
                max_depth: int | None = None, soft_levels: bool = False
                ) -> Iterator[HierarchicalSample]:
    """``sample(world, n_samples, ...)`` in consecutive chunks of at most
    ``chunk_size`` rows; they concatenate to exactly that draw."""
    g = _check_world(world, max_length)
    if soft_levels and g.layer is None:
        raise ValueError(f"soft_levels=True needs a layered grammar (every nonterminal at "
                         f"one depth); grammar {g.name!r} is not layered. Set "
                         "soft_levels=false, or use generators.pcfg.inference.ancestor_posteriors")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 0:
        raise ValueError(f"n_samples={n_samples!r} must be a non-negative integer")
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} must be positive")
    w = _widths(g, max_length, max_depth)
    ss = _rng.as_seed_sequence(rng)
    cache: dict[int, _Block] = {}
    drawn = accepted = 0
    for lo in range(0, n_samples, chunk_size):
        hi = min(lo + chunk_size, n_samples)
        out = _alloc(g, w, hi - lo)
        for b, blo, bhi in _rng.blocks(lo, hi):
            if b not in cache:
                cache.clear()
                cache[b] = _block(g, ss, b, w, max_length, max_depth)
                drawn += cache[b].drawn
                accepted += cache[b].accepted
            cache[b].write(out, b * _rng.BLOCK_SIZE + blo - lo, blo, bhi)
        meta = _meta(g, ss, max_length, max_depth, drawn, accepted, w)
        chunk = _assemble(g, out, meta)
        if soft_levels:
            post = pcfg_soft.posterior_levels(g, chunk.x, chunk.aux["lengths"])
            chunk = dataclasses.replace(chunk, aux={
                **chunk.aux, **{f"posterior_depth{d}": p for d, p in enumerate(post)}})
        yield chunk


def sample(world: Grammar, n_samples: int, *, rng: _rng.RNGLike = None,
           max_length: int | None = None, max_depth: int | None = None,
           soft_levels: bool = False) -> HierarchicalSample:
    """Draw ``n_samples`` derivation trees (see the module docstring for arrays)."""
    chunks = list(iter_chunks(world, n_samples, rng=rng, chunk_size=max(n_samples, 1),
                              max_length=max_length, max_depth=max_depth,
                              soft_levels=soft_levels))
    if chunks:
        return concat(chunks)
    w = _widths(world, max_length, max_depth)
    return _assemble(world, _alloc(world, w, 0),
                     _meta(world, _rng.as_seed_sequence(rng), max_length, max_depth, 0, 0, w))
