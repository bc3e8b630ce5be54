"""Plots drawn from saved tables only (never recomputing a result).

``layer_level_heatmap`` reads ``probe_scores.csv`` and draws a sites × levels
heatmap (rows: sites in forward order, top = input; columns: levels coarse → fine,
as stored) of one metric, by default the selectivity averaged over positions on the
random held-out split at the last probed step.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from tmr.io import atomic_path
from tmr.probes import MEAN_POSITION


def read_scores(csv_path: str | Path) -> list[dict[str, str]]:
    with Path(csv_path).open(newline="") as f:
        return list(csv.DictReader(f))


def layer_level_table(rows: list[dict[str, str]], *, metric: str = "selectivity",
                      split: str = "test", step: int | None = None
                      ) -> tuple[list[str], list[str], np.ndarray, int]:
    """``(sites, levels, values (n_sites, n_levels), step)`` from CSV rows (NaN where
    missing), sites and levels in the order they first appear in the table."""
    chosen = [r for r in rows if r["metric"] == metric and r["split"] == split
              and r["position"] == MEAN_POSITION]
    if not chosen:
        raise ValueError(f"no rows with metric={metric!r}, split={split!r} in the table")
    steps = sorted({int(r["step"]) for r in chosen})
    at = steps[-1] if step is None else step
    if at not in steps:
        raise ValueError(f"step {at} is not in the table; probed steps: {steps}")
    chosen = [r for r in chosen if int(r["step"]) == at]
    sites = list(dict.fromkeys(r["site"] for r in chosen))
    levels = list(dict.fromkeys(r["level"] for r in rows))
    values = np.full((len(sites), len(levels)), np.nan)  # (n_sites, n_levels)
    for r in chosen:
        values[sites.index(r["site"]), levels.index(r["level"])] = float(r["value"])
    return sites, levels, values, at


def layer_level_figure(sites: list[str], levels: list[str], values: np.ndarray,
                       title: str) -> Figure:
    """A sites × levels heatmap of ``values`` (n_sites, n_levels), each cell annotated."""
    fig, ax = plt.subplots(figsize=(1.2 * len(levels) + 2.5, 0.45 * len(sites) + 1.6))
    im = ax.imshow(values, cmap="viridis", vmin=min(0.0, float(np.nanmin(values))),
                   vmax=max(1.0, float(np.nanmax(values))), aspect="auto")
    for i in range(len(sites)):
        for j in range(len(levels)):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] < 0.5 else "black")
    long = max(map(len, levels)) > 10  # long names (e.g. clusters_p0.592746) slant
    ax.set_xticks(range(len(levels)), levels, rotation=30 if long else 0,
                  ha="right" if long else "center")
    ax.set_yticks(range(len(sites)), sites)
    ax.set_xlabel("latent level (coarse → fine)")
    ax.set_ylabel("site (input at top)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def layer_level_heatmap(csv_path: str | Path, out_png: str | Path, *,
                        metric: str = "selectivity", split: str = "test",
                        step: int | None = None) -> Path:
    """Draw the sites × levels heatmap of ``metric`` and write it atomically."""
    sites, levels, values, at = layer_level_table(read_scores(csv_path), metric=metric,
                                                  split=split, step=step)
    fig = layer_level_figure(sites, levels, values, f"{metric} ({split} split, step {at})")
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return out_png
