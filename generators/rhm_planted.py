"""Planted failure modes for the Random Hierarchy Model: known answers for tools.

Three optional modes, each an honest instance of a way a coarse-graining can mislead,
with its ground truth stored next to the data (``aux/planted_*`` and ``meta["planted"]``).
All are off by default; turned on by ``planted = [...]`` in the RHM config. Notation:
``v`` vocabulary, ``n`` classes, ``m`` synonyms, ``s`` tuple size, ``L`` levels,
``T = s**L`` leaves, ``root`` the class at the top of the sampled tree,
``x_i`` the grammar leaf at position ``i``.

``dangerous`` (a dangerously irrelevant detail): every sample independently gets
    ``d ~ Bernoulli(f)`` (``f = dangerous_fraction``, default 0.1). Where ``d = 1`` the
    token at leaf position ``p = dangerous_position`` carries a mark (a "diacritic": its
    id moves from ``x_p`` to ``x_p + v * w_d``) and the label moves by one class. The mark
    is rare and sits at one of ``T`` positions, so it has a small variance and vanishes
    under any averaging or top-variance cutoff, yet it decides the root label on a
    fraction ``f`` of the samples. ``aux/planted_dangerous`` (n,) uint8 holds ``d``.
``misaligned`` (a misaligned scale): ``r`` is the rule (synonym) index that expanded the
    level-``L-1`` node ``j = misaligned_tuple`` into the leaf tuple ``j`` (leaves
    ``s*j .. s*j+s-1``). ``r`` is a function of that leaf tuple (the grammar is
    unambiguous) and is independent of every level ``0..L-1`` (rule indices are drawn
    independently of the symbols), so it lives at the leaf scale only; the label is
    shifted by ``r``. ``aux/planted_misaligned`` (n,) holds ``r``. The leaves are unchanged.
``nuisance`` (a high-variance irrelevant variable): every leaf gets an independent fair
    bit ``c_i ~ Bernoulli(1/2)`` (a "case" mark: the id moves from ``x_i`` to
    ``x_i + v * w_c * c_i``). The bits have the largest variance a bit can have, at every
    position, and are independent of every level, of every rule index and of the label,
    by construction (their own random stream). ``aux/planted_nuisance`` (n, T) uint8.

What changes and what stays true:

- label: ``levels[0] = (root + d + r) mod n`` (terms of modes that are off are 0); the
  tree's own root is ``aux/planted_true_root``. Levels ``1..L`` and ``aux/rules`` are the
  unchanged tree, so ``levels[L]`` holds the grammar leaves and
  ``x mod v == levels[L]`` exactly (the marks are whole multiples of ``v``).
- input: ``x = levels[L] + v * (w_c * c + w_d * d * [i == p])`` with ``w_c = 1`` and
  ``w_d = 2`` when both marks are on (``w_d = 1`` with ``dangerous`` alone), so the
  input alphabet has ``v * (1 + w_c + w_d)`` ids: ``meta["input_vocab_size"]``.
- randomness: ``d`` and ``c`` come from the named streams ``planted.dangerous`` and
  ``planted.nuisance`` of the draw's seed, one generator per block of
  ``BLOCK_SIZE`` output rows, so the tree draws are the same bytes whether the modes are
  on or off, each mode's draws do not depend on which other modes are on, and chunked
  generation does not depend on the chunk size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from generators import _rng
from generators.base import HierarchicalSample, min_uint_dtype

MODES = ("dangerous", "misaligned", "nuisance")
DEFAULT_DANGEROUS_FRACTION = 0.1
DEFAULT_DANGEROUS_POSITION = 0
DEFAULT_MISALIGNED_TUPLE = 0


@dataclasses.dataclass(frozen=True)
class Planted:
    """Resolved planted modes of one RHM draw (see the module docstring)."""

    modes: tuple[str, ...]
    vocab_size: int
    n_classes: int
    tuple_size: int
    n_levels: int
    dangerous_fraction: float = 0.0
    dangerous_position: int = 0
    misaligned_tuple: int = 0

    def on(self, mode: str) -> bool:
        return mode in self.modes

    @property
    def nuisance_weight(self) -> int:
        """``w_c``: the case mark adds ``v * w_c``."""
        return 1 if self.on("nuisance") else 0

    @property
    def dangerous_weight(self) -> int:
        """``w_d``: the dangerous mark adds ``v * w_d``."""
        return (1 + self.nuisance_weight) if self.on("dangerous") else 0

    @property
    def input_vocab_size(self) -> int:
        """Token ids in ``x``: ``v * (1 + w_c + w_d)``."""
        return self.vocab_size * (1 + self.nuisance_weight + self.dangerous_weight)

    @property
    def misaligned_node(self) -> int:
        """Column of ``aux['rules']`` holding ``r``: node ``j`` of level ``L-1``."""
        s, L = self.tuple_size, self.n_levels
        return (s ** (L - 1) - 1) // (s - 1) + self.misaligned_tuple

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "modes": list(self.modes), "input_vocab_size": self.input_vocab_size,
            "label": "levels[0] = (aux/planted_true_root + aux/planted_dangerous + "
                     "aux/planted_misaligned) mod n_classes (terms of modes that are off are 0)",
            "input": "x = levels[L] + vocab_size * (nuisance_weight * aux/planted_nuisance + "
                     "dangerous_weight * aux/planted_dangerous * [position == "
                     "dangerous_position]); x mod vocab_size == levels[L]",
            "nuisance_weight": self.nuisance_weight, "dangerous_weight": self.dangerous_weight,
        }
        if self.on("dangerous"):
            out["dangerous_fraction"] = self.dangerous_fraction
            out["dangerous_position"] = self.dangerous_position
        if self.on("misaligned"):
            out["misaligned_tuple"] = self.misaligned_tuple
            out["misaligned_rules_column"] = self.misaligned_node
        return out


def check(planted: Sequence[str] = (), dangerous_fraction: float | None = None,
          dangerous_position: int | None = None, misaligned_tuple: int | None = None, *,
          vocab_size: int, n_classes: int, tuple_size: int, n_levels: int) -> Planted | None:
    """Validate the planted options against the world's sizes; ``None`` when none is on.

    Raises ``ValueError`` naming the bad value and the fix: an unknown or repeated mode,
    a fraction outside [0, 1), a position outside the leaves, a parameter set for a mode
    that is off, a label shift with a single class.
    """
    if isinstance(planted, str):
        raise ValueError(f"planted={planted!r} must be a list of modes, e.g. "
                         f"planted = [{planted!r}]")
    modes = tuple(planted)
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"planted mode {mode!r} is unknown; choose among {list(MODES)}")
    if len(set(modes)) != len(modes):
        raise ValueError(f"planted={list(modes)} names a mode twice; list each mode once")
    for key, value, mode in (("dangerous_fraction", dangerous_fraction, "dangerous"),
                             ("dangerous_position", dangerous_position, "dangerous"),
                             ("misaligned_tuple", misaligned_tuple, "misaligned")):
        if value is not None and mode not in modes:
            raise ValueError(f"{key}={value!r} is set but planted={list(modes)} does not "
                             f"include {mode!r}; add {mode!r} to planted or drop {key}")
    if not modes:
        return None
    T, n_tuples = tuple_size**n_levels, tuple_size ** (n_levels - 1)
    if ("dangerous" in modes or "misaligned" in modes) and n_classes < 2:
        raise ValueError(f"planted modes 'dangerous' and 'misaligned' shift the root label, "
                         f"which needs n_classes >= 2 (got n_classes={n_classes})")
    f = DEFAULT_DANGEROUS_FRACTION if dangerous_fraction is None else dangerous_fraction
    if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 <= float(f) < 1.0:
        raise ValueError(f"dangerous_fraction={f!r} must be a number in [0, 1), e.g. 0.1")
    p = DEFAULT_DANGEROUS_POSITION if dangerous_position is None else dangerous_position
    if isinstance(p, bool) or not isinstance(p, int | np.integer) or not 0 <= p < T:
        raise ValueError(f"dangerous_position={p!r} must be a leaf position in 0..{T - 1} "
                         f"(tuple_size**n_levels = {T} leaves)")
    j = DEFAULT_MISALIGNED_TUPLE if misaligned_tuple is None else misaligned_tuple
    if isinstance(j, bool) or not isinstance(j, int | np.integer) or not 0 <= j < n_tuples:
        raise ValueError(f"misaligned_tuple={j!r} must be a leaf tuple in 0..{n_tuples - 1} "
                         f"(tuple_size**(n_levels-1) = {n_tuples} tuples)")
    on_d = "dangerous" in modes
    return Planted(modes=tuple(m for m in MODES if m in modes), vocab_size=vocab_size,
                   n_classes=n_classes, tuple_size=tuple_size, n_levels=n_levels,
                   dangerous_fraction=float(f) if on_d else 0.0,
                   dangerous_position=int(p) if on_d else 0,
                   misaligned_tuple=int(j) if "misaligned" in modes else 0)


def _block_draws(ss: np.random.SeedSequence, name: str, start: int, stop: int,
                 draw: Any) -> np.ndarray:
    """Rows ``[start, stop)`` of a per-row draw made one whole block at a time from the
    named stream ``name`` (``draw(gen)`` returns the block's ``BLOCK_SIZE`` rows)."""
    parts = []
    for b, lo, hi in _rng.blocks(start, stop):
        parts.append(draw(_rng.block_generator(_rng.stream(ss, name), b))[lo:hi])
    return np.concatenate(parts) if parts else draw(np.random.default_rng(0))[:0]


def plant(sample: HierarchicalSample, planted: Planted, ss: np.random.SeedSequence,
          start: int) -> HierarchicalSample:
    """The sample's rows ``start .. start+len(sample)`` of the draw with seed ``ss``, with
    the planted modes applied (formulas in the module docstring)."""
    n, T, v = len(sample), planted.tuple_size**planted.n_levels, planted.vocab_size
    bs = _rng.BLOCK_SIZE
    true_root = np.asarray(sample.levels[0]).reshape(n)
    leaves = np.asarray(sample.levels[-1])
    shift = np.zeros(n, dtype=np.int64)
    marks = np.zeros((n, T), dtype=np.int64)
    aux = dict(sample.aux)
    aux["planted_true_root"] = true_root.copy()
    if planted.on("dangerous"):
        f = planted.dangerous_fraction
        d = _block_draws(ss, "planted.dangerous", start, start + n,
                         lambda g: (g.random(bs) < f).astype(np.uint8))  # (n,)
        shift += d
        marks[:, planted.dangerous_position] += planted.dangerous_weight * d
        aux["planted_dangerous"] = d
    if planted.on("misaligned"):
        r = np.asarray(sample.aux["rules"])[:, planted.misaligned_node]  # (n,)
        shift += r
        aux["planted_misaligned"] = r.copy()
    if planted.on("nuisance"):
        c = _block_draws(ss, "planted.nuisance", start, start + n,
                         lambda g: g.integers(0, 2, size=(bs, T), dtype=np.uint8))  # (n, T)
        marks += planted.nuisance_weight * c
        aux["planted_nuisance"] = c
    label = ((true_root.astype(np.int64) + shift) % planted.n_classes).astype(true_root.dtype)
    x = (leaves.astype(np.int64) + v * marks).astype(min_uint_dtype(planted.input_vocab_size - 1))
    levels = (label.reshape(n, 1), *sample.levels[1:])
    meta = {**sample.meta, "planted": planted.meta(),
            "input_vocab_size": planted.input_vocab_size}
    return dataclasses.replace(sample, x=x, levels=levels, aux=aux, meta=meta)
