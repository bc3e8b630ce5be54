"""Named hook sites and activation capture (the TransformerLens idea, in a few lines).

Every interesting activation of a :class:`tmr.models.HookedModel` passes through a
:class:`HookPoint`, an ``nn.Identity`` that knows its stable dotted name
(``embed``, ``layers.{i}.{site}``, ``head``). :func:`run_with_cache` runs a model
once and returns the output with the activations at the requested names. Probes,
metrics, RG schemes and bounds address activations by these names only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn


class HookPoint(nn.Identity):
    """An identity module marking a named activation site.

    ``name`` is the stable dotted site name (set by the owning model).
    """

    def __init__(self, name: str = "") -> None:
        super().__init__()
        self.name = name

    def extra_repr(self) -> str:
        return repr(self.name)


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """All hook points of ``model`` by site name, in registration (forward) order."""
    return {m.name: m for m in model.modules() if isinstance(m, HookPoint)}


def run_with_cache(model: nn.Module, x: Any, names: Iterable[str] | None = None,
                   *, detach: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``model(x)`` and capture the activations at ``names`` (all sites if None).

    Returns ``(output, cache)`` with ``cache[name]`` the tensor that passed through the
    hook point ``name`` (detached unless ``detach=False``). An unknown name raises a
    ValueError listing the model's sites, before anything runs.
    """
    points = hook_points(model)
    wanted = list(points) if names is None else list(names)
    unknown = [n for n in wanted if n not in points]
    if unknown:
        raise ValueError(f"unknown hook site {unknown[0]!r}; the model's sites are "
                         f"{list(points)}")
    cache: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            cache[name] = output.detach() if detach else output
        return hook

    try:
        for name in wanted:
            handles.append(points[name].register_forward_hook(make_hook(name)))
        output = model(x)
    finally:
        for h in handles:
            h.remove()
    return output, {n: cache[n] for n in wanted if n in cache}


def capture_site(model: nn.Module, x: torch.Tensor, site: str, *, batch: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(output, activations at site)`` of ``model`` on ``x`` as numpy arrays in the
    model's dtype, without gradients; ``batch`` rows per forward pass (None: one pass)."""
    step = len(x) if batch is None else batch
    outs, acts = [], []
    with torch.no_grad():
        for i in range(0, len(x), max(step, 1)):
            out, cache = run_with_cache(model, x[i:i + step], [site])
            outs.append(out.cpu().numpy())
            acts.append(cache[site].cpu().numpy())
    return np.concatenate(outs), np.concatenate(acts)
