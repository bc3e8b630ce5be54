"""Random Hierarchy Model (RHM).

Cagnetta, Petrini, Tomasini, Favero & Wyart, "How deep neural networks learn
compositional data: the random hierarchy model", PRX 14, 031001 (2024); power-law
rule probabilities from Cagnetta, Kang & Wyart (2025). See
``shared/docs/background.md`` §2.1.

A world has ``L = n_levels`` rule tables. Table ``l`` (``l = 1..L``) maps each
symbol of level ``l-1`` (a class at ``l = 1``, else one of ``v`` symbols) to ``m``
distinct ``s``-tuples of level-``l`` symbols; all tuples of one table are distinct,
so the grammar is unambiguous and every level is a function of the leaves.
Feasibility: ``n*m <= v**s`` (root table) and ``m <= v**(s-1)`` (the others).

A sample draws a root class, then every node independently picks a rule index
``i`` with probability ``p_i`` (uniform, or ``p_i ∝ (i+1)^-(1+a)``), down to the
``s**L`` leaves. The number of distinct inputs is
``P_max = n * m**((s**L - 1)/(s - 1))`` (eq. in §2.1), an exact Python int.

Rule indices are returned in ``aux["rules"]`` of shape ``(n, (s**L-1)/(s-1))``,
breadth first: the node ``k`` of level ``l`` (``0 <= k < s**l``) is column
``(s**l - 1)/(s - 1) + k``, and its children are nodes ``s*k .. s*k+s-1`` of level
``l+1``.

Planted failure modes with known answers (a dangerously irrelevant mark, a
misaligned leaf-scale latent, a nuisance mark; off by default) are described in
:mod:`generators.rhm_planted`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from generators import _rng, rhm_planted
from generators.base import HierarchicalSample, concat, min_uint_dtype

NAME = "rhm"
#: worlds with at most this many distinct inputs are enumerated when sampling
#: without replacement (exact weighted sampling without replacement, any n).
ENUMERATE_LIMIT = 2**20


def _package_version() -> str:
    try:
        return version("tmr-workbench")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


#: ``tmr.config.OMIT_DEFAULT`` (spelt out: generators do not import tmr)
_OMIT = {"omit_default": True}


@dataclasses.dataclass(frozen=True)
class Config:
    """Parameters of an RHM dataset (``make_world`` and ``sample`` keywords)."""

    vocab_size: int = 8
    n_classes: int = 8
    n_synonyms: int = 2
    tuple_size: int = 2
    n_levels: int = 3
    rule_exponent: float | None = None
    root_prior: tuple[float, ...] | None = None
    replacement: bool = True
    #: planted failure modes (``generators.rhm_planted``; off by default and then left
    #: out of the config's record, which stays as it was before these fields existed)
    planted: tuple[str, ...] = dataclasses.field(default=(), metadata=_OMIT)
    dangerous_fraction: float | None = dataclasses.field(default=None, metadata=_OMIT)
    dangerous_position: int | None = dataclasses.field(default=None, metadata=_OMIT)
    misaligned_tuple: int | None = dataclasses.field(default=None, metadata=_OMIT)

    def __post_init__(self) -> None:
        rhm_planted.check(self.planted, self.dangerous_fraction, self.dangerous_position,
                          self.misaligned_tuple, vocab_size=self.vocab_size,
                          n_classes=self.n_classes, tuple_size=self.tuple_size,
                          n_levels=self.n_levels)


@dataclasses.dataclass(frozen=True, eq=False)
class World:
    """The fixed rules of an RHM.

    ``rules[l-1]`` has shape ``(n_parents, m, s)``: the ``m`` tuples a level-``l-1``
    symbol can expand into (``n_parents`` is ``n_classes`` for ``l = 1``, else
    ``vocab_size``). ``rule_probs`` (m,) and ``root_prior`` (n_classes,) are the
    probabilities of a rule index and of a root class.
    """

    vocab_size: int
    n_classes: int
    n_synonyms: int
    tuple_size: int
    n_levels: int
    rules: tuple[np.ndarray, ...]
    rule_probs: np.ndarray
    root_prior: np.ndarray
    rule_exponent: float | None = None

    @property
    def symbol_dtype(self) -> np.dtype:
        return min_uint_dtype(max(self.vocab_size, self.n_classes) - 1)

    @property
    def rule_dtype(self) -> np.dtype:
        return min_uint_dtype(self.n_synonyms - 1)

    @property
    def n_nodes(self) -> int:
        """Internal nodes per tree: ``(s**L - 1)/(s - 1)``."""
        s, L = self.tuple_size, self.n_levels
        return (s**L - 1) // (s - 1)

    @property
    def uniform_rules(self) -> bool:
        return self.rule_exponent is None

    @property
    def level_names(self) -> tuple[str, ...]:
        return ("root", *(f"level{l}" for l in range(1, self.n_levels + 1)))

    def params(self) -> dict[str, object]:
        return {
            "vocab_size": self.vocab_size, "n_classes": self.n_classes,
            "n_synonyms": self.n_synonyms, "tuple_size": self.tuple_size,
            "n_levels": self.n_levels, "rule_exponent": self.rule_exponent,
            "root_prior": self.root_prior.tolist(),
        }

    @cached_property
    def _tables(self) -> tuple[np.ndarray, ...]:
        """Per level, the children of (parent, rule) at row ``parent*m + rule``;
        packed into one unsigned int per tuple when ``s * itemsize`` is 1, 2, 4
        or 8 bytes (one 1-D gather instead of a row gather)."""
        out = []
        for table in self.rules:
            flat = np.ascontiguousarray(table.reshape(-1, self.tuple_size))
            width = flat.shape[1] * flat.itemsize
            if width in (1, 2, 4, 8):
                flat = flat.view(np.dtype(f"u{width}")).ravel()
            out.append(flat)
        return tuple(out)

    @cached_property
    def _lookup(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """Per level, sorted tuple codes and the ``parent*m + rule`` they come from."""
        out = []
        for table in self.rules:
            codes = _tuple_codes(table.reshape(-1, self.tuple_size), self.vocab_size)
            order = np.argsort(codes, kind="stable")
            out.append((codes[order], order))
        return tuple(out)

    @cached_property
    def _rule_cdf(self) -> np.ndarray:
        return np.cumsum(self.rule_probs)

    @cached_property
    def _root_cdf(self) -> np.ndarray:
        return np.cumsum(self.root_prior)


def _tuple_codes(tuples: np.ndarray, v: int) -> np.ndarray:
    """Integer code ``sum_j t_j v**(s-1-j)`` of each row of ``tuples`` (k, s)."""
    s = tuples.shape[-1]
    if v**s >= 2**63:
        raise ValueError(f"vocab_size**tuple_size = {v}**{s} does not fit in int64; "
                         "decode needs smaller worlds")
    codes = np.zeros(tuples.shape[:-1], dtype=np.int64)
    for j in range(s):
        codes *= v
        codes += tuples[..., j]
    return codes


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}={value!r} must be an integer")
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    return int(value)


def _distinct_tuples(gen: np.random.Generator, v: int, s: int, k: int) -> np.ndarray:
    """``k`` distinct uniformly random ``s``-tuples over ``range(v)`` in random
    order, without enumerating the ``v**s`` tuples (Floyd's algorithm inside
    ``Generator.choice`` for int64 codes; rejection of duplicate rows beyond)."""
    total = v**s
    if total < 2**63:
        codes = gen.choice(total, size=k, replace=False, shuffle=True)
        digits = np.empty((k, s), dtype=np.int64)
        for j in range(s - 1, -1, -1):
            codes, digits[:, j] = np.divmod(codes, v)
        return digits
    rows = np.empty((0, s), dtype=np.int64)
    while len(rows) < k:  # duplicates are astronomically rare here
        cand = np.concatenate([rows, gen.integers(0, v, size=(k - len(rows), s))])
        _, first = np.unique(cand, axis=0, return_index=True)
        rows = cand[np.sort(first)]
    return rows


def make_world(*, vocab_size: int, n_classes: int, n_synonyms: int, tuple_size: int,
               n_levels: int, rule_exponent: float | None = None,
               root_prior: Sequence[float] | None = None,
               rng: _rng.RNGLike = None) -> World:
    """Draw the rule tables of an RHM.

    Raises ``ValueError`` (naming the values and the constraint) for infeasible
    parameters: ``m > v**(s-1)``, ``n*m > v**s``, non-positive sizes, a root prior
    that is not a probability vector of length ``n``.
    """
    v = _check_int("vocab_size", vocab_size, 1)
    n = _check_int("n_classes", n_classes, 1)
    m = _check_int("n_synonyms", n_synonyms, 1)
    s = _check_int("tuple_size", tuple_size, 2)
    L = _check_int("n_levels", n_levels, 1)
    if m > v ** (s - 1):
        raise ValueError(
            f"n_synonyms={m} exceeds vocab_size**(tuple_size-1)={v}**{s - 1}={v ** (s - 1)}: "
            "rules could not be unambiguous; lower n_synonyms or raise vocab_size")
    if n * m > v**s:
        raise ValueError(
            f"n_classes*n_synonyms={n}*{m}={n * m} exceeds vocab_size**tuple_size={v}**{s}="
            f"{v**s}: root rules could not be unambiguous; lower n_classes or n_synonyms, "
            "or raise vocab_size")
    if rule_exponent is None:
        probs = np.full(m, 1.0 / m)
    else:
        a = float(rule_exponent)
        if not math.isfinite(a):
            raise ValueError(f"rule_exponent={rule_exponent!r} must be a finite number or None")
        weights = np.arange(1, m + 1, dtype=np.float64) ** -(1.0 + a)
        probs = weights / weights.sum()
    if root_prior is None:
        prior = np.full(n, 1.0 / n)
    else:
        prior = np.asarray(root_prior, dtype=np.float64)
        if prior.shape != (n,) or np.any(prior < 0) or not np.all(np.isfinite(prior)):
            raise ValueError(f"root_prior={list(root_prior)} must be {n} non-negative numbers "
                             f"(one per class, n_classes={n})")
        if abs(prior.sum() - 1.0) > 1e-9:
            raise ValueError(f"root_prior sums to {prior.sum():.12g}, not 1; normalise it")
    gen = _rng.as_generator(rng)
    dt = min_uint_dtype(max(v, n) - 1)
    rules = []
    for level in range(1, L + 1):
        n_par = n if level == 1 else v
        tuples = _distinct_tuples(gen, v, s, n_par * m)
        rules.append(tuples.astype(dt).reshape(n_par, m, s))
    return World(vocab_size=v, n_classes=n, n_synonyms=m, tuple_size=s, n_levels=L,
                 rules=tuple(rules), rule_probs=probs, root_prior=prior,
                 rule_exponent=None if rule_exponent is None else float(rule_exponent))


def n_distinct_inputs(world: World) -> int:
    """``P_max = n_eff * m**((s**L - 1)/(s - 1))`` as an exact int (``n_eff``:
    classes of non-zero prior probability; rules of zero probability never occur)."""
    n_eff = int(np.count_nonzero(world.root_prior))
    return n_eff * world.n_synonyms**world.n_nodes


def distinct_limit(cfg: Config) -> int | None:
    """``P_max`` of the worlds ``cfg`` describes when it samples without replacement
    (``replacement = false``), else None: a data config is checked against it before
    anything is generated."""
    if cfg.replacement:
        return None
    n_eff = cfg.n_classes if cfg.root_prior is None else sum(1 for p in cfg.root_prior if p > 0)
    s, L = cfg.tuple_size, cfg.n_levels
    if s < 2 or L < 1 or cfg.n_synonyms < 1 or n_eff < 1:
        return None  # make_world names the bad value
    return n_eff * cfg.n_synonyms ** ((s**L - 1) // (s - 1))


def _draw_rules(world: World, gen: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    m = world.n_synonyms
    if world.uniform_rules and m <= 256 and m & (m - 1) == 0:
        # m a power of two: the low bits of raw 64-bit draws, one byte per index
        # (exactly uniform; about 4x faster than Generator.integers for uint8)
        size = math.prod(shape)
        raw = gen.bit_generator.random_raw(-(-size // 8)).view(np.uint8)[:size]
        return (raw & np.uint8(m - 1)).reshape(shape)
    if world.uniform_rules:
        return gen.integers(0, m, size=shape, dtype=world.rule_dtype)
    idx = np.searchsorted(world._rule_cdf, gen.random(shape), side="right")
    return np.minimum(idx, world.n_synonyms - 1).astype(world.rule_dtype)


def _draw_roots(world: World, gen: np.random.Generator, n: int) -> np.ndarray:
    if np.all(world.root_prior == world.root_prior[0]):
        return gen.integers(0, world.n_classes, size=n, dtype=world.symbol_dtype)
    idx = np.searchsorted(world._root_cdf, gen.random(n), side="right")
    return np.minimum(idx, world.n_classes - 1).astype(world.symbol_dtype)


def _grow(world: World, top_level: int, top: np.ndarray, rules: np.ndarray) -> list[np.ndarray]:
    """Expand level ``top_level`` symbols ``top`` (n, s**top_level) with the rule
    indices ``rules`` (n, n_nodes) down to the leaves; returns levels
    ``top_level+1 .. L``."""
    s, m = world.tuple_size, world.n_synonyms
    n = top.shape[0]
    out = []
    parents = top
    for level in range(top_level + 1, world.n_levels + 1):
        k = s ** (level - 1)
        off = (k - 1) // (s - 1)
        table = world._tables[level - 1]
        idx = parents.astype(min_uint_dtype(len(table) - 1))
        idx *= m
        idx += rules[:, off:off + k]  # (n, k) row parent*m + rule
        children = np.take(table, idx, axis=0)  # (n, k) packed, or (n, k, s)
        parents = children.view(world.symbol_dtype).reshape(n, k * s)
        out.append(parents)
    return out


def _assemble(world: World, roots: np.ndarray, rules: np.ndarray, meta: dict) -> HierarchicalSample:
    levels = [roots.reshape(-1, 1), *_grow(world, 0, roots.reshape(-1, 1), rules)]
    return HierarchicalSample(x=levels[-1], levels=tuple(levels), level_names=world.level_names,
                              world=world, meta=meta, aux={"rules": rules})


def _meta(world: World, ss: np.random.SeedSequence | None, replacement: bool) -> dict:
    return {
        "generator": NAME, "params": world.params(), "replacement": replacement,
        "version": _package_version(), "block_size": _rng.BLOCK_SIZE,
        "seed_entropy": None if ss is None else _rng.seed_entropy(ss),
        "rules_layout": "aux['rules'][:, (s**l-1)/(s-1) + k] is the rule index of node k "
                        "of level l (breadth first)",
    }


def _draw_block(world: World, ss: np.random.SeedSequence, b: int,
                cache: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Roots (bs,) and rule indices (bs, n_nodes) of block ``b``: roots first, then rules.
    ``cache`` keeps the last block drawn, so chunks smaller than a block do not
    redraw it."""
    if cache is not None and b in cache:
        return cache[b]
    gen = _rng.block_generator(ss, b)
    roots = _draw_roots(world, gen, _rng.BLOCK_SIZE)
    out = roots, _draw_rules(world, gen, (_rng.BLOCK_SIZE, world.n_nodes))
    if cache is not None:
        cache.clear()
        cache[b] = out
    return out


def _sample_range(world: World, ss: np.random.SeedSequence, start: int, stop: int,
                  select: np.ndarray | None = None,
                  cache: dict | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """All levels (root first) and rule indices (n, n_nodes) of stream samples
    ``[start, stop)``, or only of the sorted stream indices ``select`` in that range.

    Each block is drawn whole (roots first, then rules) and cut afterwards, so its
    bytes do not depend on how the range is cut into chunks; trees are grown one
    block at a time, which keeps the working set in cache.
    """
    bs, s = _rng.BLOCK_SIZE, world.tuple_size
    n = stop - start if select is None else len(select)
    levels = [np.empty((n, s**l), dtype=world.symbol_dtype) for l in range(world.n_levels + 1)]
    rules = np.empty((n, world.n_nodes), dtype=world.rule_dtype)
    at = 0
    for b, lo, hi in _rng.blocks(start, stop):
        rows: slice | np.ndarray = slice(lo, hi)
        if select is not None:
            a, z = np.searchsorted(select, [b * bs + lo, b * bs + hi])
            rows = select[a:z] - b * bs
        block_roots, block_rules = _draw_block(world, ss, b, cache)
        roots, block_rules = block_roots[rows].reshape(-1, 1), block_rules[rows]
        out_rows = slice(at, at + len(roots))
        rules[out_rows] = block_rules
        for out, lv in zip(levels, [roots, *_grow(world, 0, roots, block_rules)], strict=True):
            out[out_rows] = lv
        at += len(roots)
    return levels, rules


def _from_levels(world: World, levels: list[np.ndarray], rules: np.ndarray,
                 meta: dict) -> HierarchicalSample:
    return HierarchicalSample(x=levels[-1], levels=tuple(levels), level_names=world.level_names,
                              world=world, meta=meta, aux={"rules": rules})


def _check_n(n_samples: int) -> int:
    return _check_int("n_samples", n_samples, 0)


def iter_chunks(world: World, n_samples: int, *, rng: _rng.RNGLike = None,
                chunk_size: int = _rng.BLOCK_SIZE, replacement: bool = True,
                planted: Sequence[str] = (), dangerous_fraction: float | None = None,
                dangerous_position: int | None = None,
                misaligned_tuple: int | None = None) -> Iterator[HierarchicalSample]:
    """``sample(world, n_samples, rng=rng, ...)`` in consecutive chunks of at most
    ``chunk_size`` rows; the chunks concatenate to exactly that draw. Arguments are
    checked when it is called, before the first chunk is asked for."""
    spec = _planted_spec(world, planted, dangerous_fraction, dangerous_position,
                         misaligned_tuple)
    n_samples = _check_n(n_samples)
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    ss = _rng.as_seed_sequence(rng)
    plain = _iter_plain(world, n_samples, ss, chunk_size, replacement)
    return plain if spec is None else _planted_chunks(plain, spec, ss)


def _planted_chunks(chunks: Iterator[HierarchicalSample], spec: rhm_planted.Planted,
                    ss: np.random.SeedSequence) -> Iterator[HierarchicalSample]:
    start = 0
    for chunk in chunks:
        yield rhm_planted.plant(chunk, spec, ss, start)
        start += len(chunk)


def _planted_spec(world: World, planted: Sequence[str], dangerous_fraction: float | None,
                  dangerous_position: int | None,
                  misaligned_tuple: int | None) -> rhm_planted.Planted | None:
    return rhm_planted.check(planted, dangerous_fraction, dangerous_position, misaligned_tuple,
                             vocab_size=world.vocab_size, n_classes=world.n_classes,
                             tuple_size=world.tuple_size, n_levels=world.n_levels)


def _iter_plain(world: World, n_samples: int, ss: np.random.SeedSequence, chunk_size: int,
                replacement: bool) -> Iterator[HierarchicalSample]:
    """The chunks of the draw without planted modes."""
    meta = _meta(world, ss, replacement)
    cache: dict = {}
    if replacement:
        for start in range(0, n_samples, chunk_size):
            levels, rules = _sample_range(world, ss, start, min(start + chunk_size, n_samples),
                                          cache=cache)
            yield _from_levels(world, levels, rules, meta)
        return
    p_max = n_distinct_inputs(world)
    if n_samples > p_max:
        raise ValueError(f"n_samples={n_samples} exceeds the {p_max} distinct inputs of this "
                         "world; sample with replacement=True or enlarge the world")
    if p_max <= ENUMERATE_LIMIT:
        whole = _enumerated_without_replacement(world, n_samples, ss, meta)
        for start in range(0, n_samples, chunk_size):
            yield whole[start:start + chunk_size]
        return
    chosen = _first_distinct(world, n_samples, ss)  # sorted indices in the i.i.d. stream
    for start in range(0, n_samples, chunk_size):
        idx = chosen[start:start + chunk_size]
        levels, rules = _sample_range(world, ss, int(idx[0]), int(idx[-1]) + 1, select=idx,
                                      cache=cache)
        yield _from_levels(world, levels, rules, meta)


def sample(world: World, n_samples: int, *, rng: _rng.RNGLike = None,
           replacement: bool = True, planted: Sequence[str] = (),
           dangerous_fraction: float | None = None, dangerous_position: int | None = None,
           misaligned_tuple: int | None = None) -> HierarchicalSample:
    """Draw ``n_samples`` inputs with all their latent levels.

    Returns ``x`` (n, s**L) in the smallest unsigned dtype, ``levels[l]``
    (n, s**l) for ``l = 0..L`` (``levels[L] is x``), rule indices in
    ``aux["rules"]`` (see module docstring).

    ``replacement=False`` returns distinct inputs: the first ``n_samples``
    distinct trees of the i.i.d. stream (successive sampling without replacement,
    probability-weighted when rules are not uniform). Worlds with at most
    ``ENUMERATE_LIMIT`` inputs are enumerated and drawn by Gumbel-top-k, which has
    the same law and stays fast when ``n_samples`` is close to ``P_max``.

    ``planted`` (with ``dangerous_fraction``, ``dangerous_position``,
    ``misaligned_tuple``) plants failure modes with known answers; then ``levels[0]`` is
    the task label, ``x`` may carry marks and ``aux["planted_*"]`` hold the ground truth
    (:mod:`generators.rhm_planted`).
    """
    ss = _rng.as_seed_sequence(rng)
    kw: dict = {"planted": planted, "dangerous_fraction": dangerous_fraction,
                "dangerous_position": dangerous_position, "misaligned_tuple": misaligned_tuple}
    chunks = list(iter_chunks(world, n_samples, rng=ss, chunk_size=max(n_samples, 1),
                              replacement=replacement, **kw))
    if chunks:
        return concat(chunks)
    empty = _assemble(world, np.zeros(0, world.symbol_dtype),
                      np.zeros((0, world.n_nodes), world.rule_dtype),
                      _meta(world, ss, replacement))
    spec = _planted_spec(world, planted, dangerous_fraction, dangerous_position,
                         misaligned_tuple)
    return empty if spec is None else rhm_planted.plant(empty, spec, ss, 0)


def _tree_keys(world: World, roots: np.ndarray, rules: np.ndarray) -> np.ndarray:
    """One exact key per tree: the root and the rule indices packed into uint64 words
    (a tree and its leaves determine each other, the grammar being unambiguous), as a
    comparable void view (n,)."""
    bits = max(1, (world.n_synonyms - 1).bit_length())
    per_word = 64 // bits
    n_words = 1 + -(-world.n_nodes // per_word)
    words = np.zeros((len(roots), n_words), dtype=np.uint64)
    words[:, 0] = roots
    for j in range(world.n_nodes):
        w, shift = divmod(j, per_word)
        words[:, 1 + w] |= rules[:, j].astype(np.uint64) << np.uint64(bits * shift)
    return words.view(np.dtype((np.void, 8 * n_words))).ravel()


def _first_distinct(world: World, n: int, ss: np.random.SeedSequence) -> np.ndarray:
    """Sorted stream indices of the first ``n`` distinct inputs of the i.i.d. stream."""
    bs = _rng.BLOCK_SIZE
    keys: list[np.ndarray] = []  # one packed tree key per drawn sample
    n_blocks, checked = 0, 0
    max_blocks = 64 + 64 * math.ceil(n / bs)
    while True:
        keys.append(_tree_keys(world, *_draw_block(world, ss, n_blocks)))
        n_blocks += 1
        if n_blocks * bs >= max(n, 2 * checked):
            _, first = np.unique(np.concatenate(keys), return_index=True)
            if len(first) >= n:
                return np.sort(first)[:n]
            checked = n_blocks * bs
        if n_blocks > max_blocks:
            raise RuntimeError(f"could not find {n} distinct inputs in {checked} draws; the "
                               "world is too skewed for sampling without replacement")


def _enumerated_without_replacement(world: World, n: int, ss: np.random.SeedSequence,
                                    meta: dict) -> HierarchicalSample:
    """Gumbel-top-k over all ``P_max`` trees: an ordered weighted sample without
    replacement (Plackett-Luce law, the same as successive sampling)."""
    m, nodes = world.n_synonyms, world.n_nodes
    classes = np.flatnonzero(world.root_prior > 0)
    per_class = m**nodes
    t = np.arange(len(classes) * per_class, dtype=np.int64)
    roots = classes[t // per_class].astype(world.symbol_dtype)
    rest = t % per_class
    rules = np.empty((len(t), nodes), dtype=world.rule_dtype)
    for j in range(nodes - 1, -1, -1):
        rest, rules[:, j] = np.divmod(rest, m)
    logp = np.log(world.root_prior[roots]) + np.log(world.rule_probs)[rules].sum(axis=1)
    gen = _rng.block_generator(ss, 0)
    keys = logp + gen.gumbel(size=len(t))
    order = np.argsort(-keys, kind="stable")[:n]
    return _assemble(world, roots[order], rules[order], meta)


def decode(world: World, x: np.ndarray) -> HierarchicalSample:
    """Recover every level and every rule index from the leaves, bottom-up.

    Raises ``ValueError`` naming the first sample and position whose tuple no rule
    of that level produces.
    """
    s, m, L = world.tuple_size, world.n_synonyms, world.n_levels
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != s**L:
        raise ValueError(f"x has shape {x.shape}; expected (n_samples, {s**L}) = "
                         f"(n, tuple_size**n_levels)")
    if x.size and (x.min() < 0 or x.max() >= world.vocab_size):
        raise ValueError(f"x holds symbols outside 0..{world.vocab_size - 1}")
    n = x.shape[0]
    levels = [x.astype(world.symbol_dtype, copy=False)]
    rules = np.empty((n, world.n_nodes), dtype=world.rule_dtype)
    for level in range(L, 0, -1):
        k = s ** (level - 1)
        codes = _tuple_codes(levels[0].reshape(n, k, s).astype(np.int64), world.vocab_size)
        sorted_codes, origin = world._lookup[level - 1]
        pos = np.minimum(np.searchsorted(sorted_codes, codes), len(sorted_codes) - 1)
        bad = sorted_codes[pos] != codes
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(f"sample {i}: tuple {levels[0][i, j * s:(j + 1) * s].tolist()} "
                             f"at level {level}, position {j}, is produced by no rule; "
                             "x was not generated by this world")
        q = origin[pos]
        off = (k - 1) // (s - 1)
        rules[:, off:off + k] = q % m
        levels.insert(0, (q // m).astype(world.symbol_dtype))
    return HierarchicalSample(x=levels[-1], levels=tuple(levels), level_names=world.level_names,
                              world=world, meta=_meta(world, None, True), aux={"rules": rules})


def resample_below(world: World, sample_: HierarchicalSample, level: int, *,
                   rng: _rng.RNGLike = None) -> HierarchicalSample:
    """New surface realisations that keep every latent at ``level`` and above.

    Every node at levels ``>= level`` redraws its rule index, so levels
    ``0..level`` are unchanged and levels below are resampled from the model
    conditioned on them (the synonym intervention of §3, "sensitivity").
    """
    L = world.n_levels
    if isinstance(level, bool) or not 0 <= int(level) <= L:
        raise ValueError(f"level={level} must be between 0 (root) and n_levels={L}")
    if "planted" in sample_.meta:
        raise ValueError("resample_below needs an unplanted sample (its root and leaves are the "
                         "tree's); generate the data with planted = []")
    gen = _rng.as_generator(rng)
    s = world.tuple_size
    off = (s**level - 1) // (s - 1)
    rules = sample_.aux["rules"].copy()
    rules[:, off:] = _draw_rules(world, gen, (len(sample_), world.n_nodes - off))
    top = sample_.levels[level]
    levels = [*sample_.levels[:level + 1], *_grow(world, level, top, rules)]
    return dataclasses.replace(sample_, x=levels[-1], levels=tuple(levels), aux={"rules": rules})
