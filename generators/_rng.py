"""Randomness: one normalisation helper, named streams and fixed-size blocks.

Every function in :mod:`generators` takes ``rng`` as an int, a
:class:`numpy.random.SeedSequence`, a :class:`numpy.random.Generator` or ``None``
(fresh OS entropy). Nothing here touches global random state.

Chunk- and worker-independence comes from *blocks*: sample ``i`` of a draw only
ever uses the stream of block ``i // BLOCK_SIZE``, whose seed is derived from the
draw's :class:`~numpy.random.SeedSequence` by a spawn key. Generating samples
``[a, b)`` therefore gives the same bytes whether it happens in one call, in chunks
of any size, or in several worker processes, and a larger draw with the same seed
contains a smaller one as its prefix.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

RNGLike = int | np.integer | np.random.SeedSequence | np.random.Generator | None

#: samples per independently seeded block (a constant of the data format: changing
#: it changes every dataset, so it is recorded in each sample's ``meta``).
BLOCK_SIZE = 16384


def as_seed_sequence(rng: RNGLike) -> np.random.SeedSequence:
    """Normalise ``rng`` to a SeedSequence.

    A Generator is consumed once (128 bits drawn) so that passing the same
    Generator twice gives two different, reproducible seeds.
    """
    if isinstance(rng, np.random.SeedSequence):
        return rng
    if rng is None:
        return np.random.SeedSequence()
    if isinstance(rng, np.random.Generator):
        return np.random.SeedSequence(int(rng.integers(0, 2**63, dtype=np.int64)) << 64
                                      | int(rng.integers(0, 2**63, dtype=np.int64)))
    if isinstance(rng, bool) or not isinstance(rng, int | np.integer):
        raise TypeError(
            f"rng={rng!r} is not an int, SeedSequence, Generator or None; pass a seed such as rng=0"
        )
    if int(rng) < 0:
        raise ValueError(f"rng={int(rng)} is negative; seeds must be non-negative integers")
    return np.random.SeedSequence(int(rng))


def as_generator(rng: RNGLike) -> np.random.Generator:
    """Normalise ``rng`` to a Generator (a Generator is returned as it is)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.Generator(np.random.PCG64(as_seed_sequence(rng)))


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode())


def stream(seed: RNGLike, name: str) -> np.random.SeedSequence:
    """The named child stream ``name`` of ``seed`` (stable: it does not depend on
    which other streams exist or in which order they are asked for)."""
    ss = as_seed_sequence(seed)
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, _name_key(name)))


def streams(seed: RNGLike, *names: str) -> dict[str, np.random.SeedSequence]:
    """Several named streams at once, e.g. ``streams(7, "world", "data", "split")``."""
    return {name: stream(seed, name) for name in names}


def block_generator(ss: np.random.SeedSequence, block: int) -> np.random.Generator:
    """The Generator of block ``block`` of the draw seeded by ``ss``."""
    child = np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, 0xB10C, block))
    return np.random.Generator(np.random.PCG64(child))


def blocks(start: int, stop: int, block_size: int = BLOCK_SIZE) -> Iterator[tuple[int, int, int]]:
    """Yield ``(block, lo, hi)``: the part ``[lo, hi)`` of block ``block`` (in
    block-local indices) that covers the global sample range ``[start, stop)``."""
    if start < 0 or stop < start:
        raise ValueError(f"invalid sample range [{start}, {stop})")
    b = start // block_size
    while b * block_size < stop:
        lo = max(start - b * block_size, 0)
        hi = min(stop - b * block_size, block_size)
        yield b, lo, hi
        b += 1


def seed_entropy(ss: np.random.SeedSequence) -> str:
    """JSON-safe record of a SeedSequence (entropy as a decimal string, spawn key)."""
    return f"{ss.entropy}:{'/'.join(map(str, ss.spawn_key))}"
