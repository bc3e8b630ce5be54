"""Sensitivity of a layer to synonym exchange below a latent level.

Cagnetta, Petrini, Tomasini, Favero & Wyart (PRX 2024) measure how much a
representation changes when the rules below level l are redrawn with level l
fixed (the surface changes, the meaning at level l does not), relative to the
change between two unrelated inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from generators import _rng
from tmr.metrics._common import as_features

__all__ = ["relative_change", "synonym_sensitivity", "synonymic_sensitivity"]


def relative_change(h: object, h_resampled: object, *, rng: _rng.RNGLike = 0) -> float:
    """S = <|h(x) - h(x')|^2> / <|h(x) - h(y)|^2>.

    ``h`` and ``h_resampled`` are ``(n, d)`` activations of the same samples
    before and after the intervention; the denominator pairs each sample with a
    random other sample (a derangement drawn with ``rng``). S = 0: the layer is
    invariant to the intervention; S ~ 1: it changes as much as for an unrelated
    input. Caveat: S is a ratio of means, not a mean of ratios.
    """
    a = as_features(h, "h")
    b = as_features(h_resampled, "h_resampled")
    if a.shape != b.shape:
        raise ValueError(f"h {a.shape} and h_resampled {b.shape} must have equal shapes")
    n = a.shape[0]
    gen = _rng.as_generator(rng)
    shift = gen.integers(1, n, size=n)  # (n,) never 0, so partner != self
    partner = (np.arange(n) + shift) % n
    num = float(((a - b) ** 2).sum(axis=1).mean())
    den = float(((a - a[partner]) ** 2).sum(axis=1).mean())
    return num / den if den > 0 else float("nan")


def synonym_sensitivity(layer_fn: Callable[[np.ndarray], Any], sample: Any, level: int, *,
                        resample: Callable[..., Any] | None = None,
                        rng: _rng.RNGLike = 0) -> Any:
    """Relative change of a layer when the surface below ``level`` is redrawn.

    ``layer_fn`` maps inputs ``sample.x`` ``(n, ...)`` to activations ``(n, d)``
    or a dict ``{site: (n, d)}``; ``resample(world, sample, level, rng=...)`` is
    the generator's intervention that keeps levels ``0..level`` and redraws the
    rest (default: :func:`generators.rhm.resample_below` for an RHM sample).
    Returns :func:`relative_change` as a float, or a dict per site.
    """
    if resample is None:
        from generators import rhm

        if not isinstance(sample.world, rhm.World):
            raise TypeError(f"no default intervention for {type(sample.world).__name__}; "
                            "pass resample=<generator>.resample_below")
        resample = rhm.resample_below
    seeds = _rng.as_seed_sequence(rng).spawn(2)
    other = resample(sample.world, sample, level, rng=np.random.default_rng(seeds[0]))
    return _changes(layer_fn, sample.x, other.x, seeds[1])


def _changes(layer_fn: Callable[[np.ndarray], Any], x: np.ndarray, x_other: np.ndarray,
             seed: np.random.SeedSequence) -> Any:
    """:func:`relative_change` of ``layer_fn`` between ``x`` and ``x_other``, per site
    when ``layer_fn`` returns a dict."""
    before, after = layer_fn(x), layer_fn(x_other)
    if isinstance(before, dict):
        return {site: relative_change(before[site], after[site],
                                      rng=np.random.default_rng(seed))
                for site in before}
    return relative_change(before, after, rng=np.random.default_rng(seed))


def synonymic_sensitivity(layer_fn: Callable[[np.ndarray], Any], sample: Any, level: int, *,
                          rng: _rng.RNGLike = 0) -> Any:
    """Synonymic sensitivity of Cagnetta et al. (PRX 2024) of an RHM sample:

        S_l = <|f(x) - f(P_l x)|^2>_x / <|f(x) - f(y)|^2>_{x,y}

    where ``P_l`` replaces every level-``l`` tuple by one of its ``m - 1`` other
    synonyms and keeps every other rule choice
    (:func:`generators.rhm_exchange.exchange_synonyms`; ``level = L`` swaps the
    input tuples, the paper's ``ℓ = 1``), and ``y`` is another sample of the set.

    It differs from :func:`synonym_sensitivity`, which redraws *every* rule at and
    below ``level`` (including the current one, with probability ``1/m`` per node):
    that one measures invariance to the whole subtree below a level, this one to one
    level of synonyms exactly, as in the paper. ``layer_fn`` maps ``sample.x`` to
    ``(n, d)`` activations or a dict ``{site: (n, d)}``; returns a float or a dict.
    """
    from generators.rhm_exchange import exchange_synonyms

    seeds = _rng.as_seed_sequence(rng).spawn(2)
    other = exchange_synonyms(sample.world, sample, level, rng=np.random.default_rng(seeds[0]))
    return _changes(layer_fn, sample.x, other.x, seeds[1])
