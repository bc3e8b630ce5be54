"""Block-RG flow on percolation data files (``tmr generate configs/percolation_*.toml``).

A percolation file holds, per sample, the cluster-id maps at every rung of its p ladder
(``levels[j]``, coarsest = highest p first; id 0 = empty site), all cut from one uniform
field per sample, so the configurations are nested across p exactly as in
``block_flow_table``. The occupation at rung j is ``levels[j] > 0``; each is blocked with
a rule (majority, decimation, spanning, mean) and iterated, recording density,
nearest-neighbour correlation and spanning probability per scale b^step, and the fixed
point p* and ν = ln b / ln R′(p*) of the measured one-step map R(p) (background.md §4).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tmr.rg.block import Rule, block_flow_configs

# Lattices whose sites form a hypercubic grid, so b^d blocks are plain array blocks.
GRID_LATTICES = ("square", "cubic", "hypercubic")


def percolation_configs(path: str | Path, split: str | None = None
                        ) -> tuple[list[float], Iterator[tuple[float, np.ndarray]], dict[str, Any]]:
    """The p ladder (increasing), ``(p, occupation (n, L, ..., L) uint8)`` per rung, and
    the world's parameters, from a site-percolation file on a grid lattice."""
    from tmr import io

    sample, attrs = io.read(path, split)
    if attrs.get("generator") != "percolation":
        raise ValueError(f"{str(path)!r} was made by generator {attrs.get('generator')!r}; "
                         f"rg-flow reads percolation files (tmr generate "
                         f"configs/percolation_square.toml)")
    world = sample.world
    if world.kind != "site" or world.lattice not in GRID_LATTICES:
        raise ValueError(f"{str(path)!r} is {world.kind} percolation on a {world.lattice} "
                         f"lattice; block rules need site percolation on one of "
                         f"{GRID_LATTICES}")
    if len(sample.x) == 0:
        raise ValueError(f"{str(path)!r} split {split!r} has no samples")
    level_ps = np.asarray(world.level_ps, dtype=np.float64)  # (K,) coarsest (highest p) first
    order = np.argsort(level_ps)  # increasing p

    def gen() -> Iterator[tuple[float, np.ndarray]]:
        for j in order:
            yield float(level_ps[j]), (np.asarray(sample.levels[j]) > 0).astype(np.uint8)

    return [float(level_ps[j]) for j in order], gen(), world.params()


def percolation_flow(path: str | Path, rule: Rule, b: int, *, n_steps: int,
                     split: str | None = None
                     ) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """``block_flow_configs`` on every rung of a percolation file; summary adds the
    world (lattice, size, p_c ...) and the file's path."""
    ps, configs, params = percolation_configs(path, split)
    rows, summary = block_flow_configs(rule, b, configs, n_steps=n_steps)
    return rows, {**summary, "data": str(path), "split": split, "ps": ps,
                  "world": params}
