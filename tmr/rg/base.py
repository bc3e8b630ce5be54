"""One interface for every coarse-graining scheme, and flows over a ladder of scales.

A *scheme* maps ``(representation, scale) -> CoarseGrained``. The representation is
whatever the scheme works on: activations of a site ``(n_samples, d)``, a kernel
``(n, n)``, a lattice configuration ``(n_samples, L, L[, L])`` or a sequence batch
``(n_samples, T)``. The scale is the cutoff: the number of kept modes ``k`` for spectral
schemes, the block size ``b`` for block schemes, the merge factor for phenomenological
RG. The result carries the coarse representation, the kept modes with a relevance
score each, and what was thrown away (an orthonormal tail basis and/or the remainder
array), so that the separation-of-scales bounds (background.md §5) can act on the tail.

A *flow* applies a scheme along a ladder of scales and records observables at every
step: ``iterate=True`` feeds each output back in (Kadanoff block flows, Meshulam merges);
``iterate=False`` applies every scale to the original representation (spectral cutoffs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class CoarseGrained:
    """Output of one scheme application.

    Attributes:
        coarse: the coarse-grained representation (scheme-specific shape, e.g. PCA scores
            ``(n, k)``, a rank-k kernel ``(n, n)``, a blocked lattice ``(n, L/b, L/b)``).
        modes: the kept modes. Spectral: orthonormal columns ``(d, k)`` (feature space) or
            ``(n, k)`` (sample space, kernels). Block: the block index map ``(L, L)`` giving
            each site's block. Phenomenological: the cluster membership ``(n_clusters, K)``.
        relevance: one score per kept mode, ``(k,)``, larger = more relevant.
        tail_basis: orthonormal basis of the discarded directions ``(d, d - k)``, or None
            where the scheme has no linear tail (block majority, spanning).
        tail_relevance: scores of the discarded modes ``(d - k,)`` (same units as
            ``relevance``), or None.
        remainder: the discarded part of the input itself (e.g. ``H - projection``,
            ``x - upsample(block_mean)``), or None.
        scale: the scale this step used.
        scheme: the scheme's name.
        meta: extra scheme-specific values (mean vector, fit parameters, ...).
    """

    coarse: np.ndarray
    modes: np.ndarray
    relevance: np.ndarray
    tail_basis: np.ndarray | None = None
    tail_relevance: np.ndarray | None = None
    remainder: np.ndarray | None = None
    scale: float = 0.0
    scheme: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Scheme(Protocol):
    """A coarse-graining scheme: ``scheme(representation, scale) -> CoarseGrained``."""

    name: str

    def __call__(self, representation: np.ndarray, scale: float) -> CoarseGrained: ...


Observable = Callable[[CoarseGrained], float]


@dataclass(frozen=True)
class FlowResult:
    """A flow: one record (scale + observables) per step, and the steps themselves.

    ``records[i]`` has key ``"step"``, ``"scale"`` (the cumulative scale for iterated
    flows: product of the block sizes so far) and one key per observable.
    """

    scheme: str
    records: list[dict[str, float]]
    steps: list[CoarseGrained]

    def column(self, name: str) -> np.ndarray:
        """One observable along the flow, ``(n_steps,)``."""
        if not self.records or name not in self.records[0]:
            known = sorted(self.records[0]) if self.records else []
            raise KeyError(f"observable {name!r} not recorded; known: {known}")
        return np.array([r[name] for r in self.records], dtype=np.float64)


def run_flow(scheme: Scheme, representation: np.ndarray, scales: Sequence[float],
             observables: Mapping[str, Observable], *, iterate: bool = False,
             keep_steps: bool = True) -> FlowResult:
    """Apply ``scheme`` over a ladder of ``scales``, recording ``observables`` each step.

    Args:
        scheme: any object following the :class:`Scheme` protocol.
        representation: the starting representation.
        scales: the ladder. With ``iterate=True`` each entry is the factor of one step
            (e.g. ``[2, 2, 2]`` blocks three times by 2); otherwise each entry is applied
            to the original representation (e.g. ``k = [64, 32, 16, 8]`` kept modes).
        observables: name -> function of the step's :class:`CoarseGrained`.
        iterate: feed each coarse output into the next step.
        keep_steps: keep every :class:`CoarseGrained` (set False for long flows).
    """
    if len(scales) == 0:
        raise ValueError("scales is empty: give at least one scale for the flow")
    records: list[dict[str, float]] = []
    steps: list[CoarseGrained] = []
    current = representation
    cumulative = 1.0
    for i, s in enumerate(scales):
        cg = scheme(current, s)
        if iterate:
            current = cg.coarse
            cumulative *= float(s)
        record: dict[str, float] = {"step": float(i),
                                    "scale": cumulative if iterate else float(s)}
        for name, obs in observables.items():
            record[name] = float(obs(cg))
        records.append(record)
        if keep_steps:
            steps.append(cg)
    return FlowResult(scheme=scheme.name, records=records, steps=steps)
