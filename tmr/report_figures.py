"""Figures of the run report, drawn from saved metric rows (nothing is recomputed).

Conventions shared by every figure:

* Depth axes are categorical: one tick per recorded site, labelled with the site's
  name, in forward order.
* Mutual-information estimates (:data:`MI_METRICS`) are drawn clipped at 0, since
  I ≥ 0; the raw estimate, which the k-NN estimator can push below 0 (it is biased
  on discrete or low-dimensional data, Ross 2014), stays in the tables and in the
  claims. A clipped point is drawn hollow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["METRICS", "MI_METRICS", "MetricInfo", "clip_mi", "depth_figure", "info",
           "information_plane_figure"]

Row = Mapping[str, object]

#: metrics that estimate a mutual information (nats): plotted clipped at 0
MI_METRICS = frozenset({"knn_mi", "binned_mi", "mi_input", "ksg_mi"})


@dataclass(frozen=True)
class MetricInfo:
    """How the report names a metric, what it measures and what to look for."""

    label: str
    what: str
    look_for: str
    log_scale: bool = False


METRICS: dict[str, MetricInfo] = {
    "effective_rank": MetricInfo(
        "effective rank", "exp of the entropy of the normalised singular values σ/Σσ of the "
        "centred activations (Roy & Vetterli 2007)",
        "a fall with depth means the layers compress onto fewer directions "
        "(paper 000, claim 3)"),
    "participation_ratio": MetricInfo(
        "participation ratio", "(Σλ)²/Σλ² of the covariance eigenvalues λ: how many "
        "directions carry the variance", "a second count of the dimensions in use; it "
        "weights the top directions more than the effective rank does"),
    "twonn": MetricInfo(
        "intrinsic dimension (TwoNN)", "dimension of the data manifold from the ratio of "
        "second to first nearest-neighbour distances (Facco et al. 2017)",
        "a fall with depth is paper 000's claim 4"),
    "mi_input": MetricInfo(
        "I(H;X) (nats)", "entropy of the layer's distinct values over the distinct inputs: "
        "how much of the input a layer keeps", "a fall once layers merge inputs "
        "(claim 6); a flat line at log n means every layer is injective on this data"),
    "knn_mi": MetricInfo(
        "I(H;Y) k-NN (nats)", "k-nearest-neighbour estimate of the information a layer "
        "carries about each latent level (Ross 2014)", "the root's curve should rise "
        "with depth (claim 5); fine levels are known early and may fall"),
    "binned_mi": MetricInfo(
        "I(H;Y) binned (nats)", "plug-in information after binning every unit into "
        "equal-width bins (Shwartz-Ziv & Tishby 2017)", "the same trend as the k-NN "
        "estimate; the bin count caps it, so compare shapes, not values"),
    "nc1": MetricInfo(
        "NC1", "within-class variability Tr(Σ_W Σ_B⁺)/C (Papyan et al. 2020)",
        "a fall towards 0 means samples of one class collapse onto their mean",
        log_scale=True),
    "rnc1": MetricInfo(
        "relative NC1", "Tr Σ_W / Tr Σ_B: within-class over between-class variance",
        "a fall means the level's classes separate", log_scale=True),
    "separation": MetricInfo(
        "separation D", "He & Su's D = Tr(SS_w SS_b⁺) (He & Su 2023)",
        "a straight falling line on this log axis is the geometric decay of claim 7",
        log_scale=True),
}


def info(metric: str) -> MetricInfo:
    """The :class:`MetricInfo` of ``metric`` (a plain one for metrics not listed)."""
    return METRICS.get(metric, MetricInfo(metric, f"the saved metric {metric!r}",
                                          "how it changes with depth and training"))


def clip_mi(metric: str, values: np.ndarray) -> np.ndarray:
    """``max(v, 0)`` for mutual-information metrics (I ≥ 0), ``values`` unchanged otherwise."""
    return np.maximum(values, 0.0) if metric in MI_METRICS else values


def _style(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#e3e6ec", linewidth=0.8)
    ax.set_axisbelow(True)


def _site_ticks(ax: Axes, sites: Sequence[str]) -> None:
    long = sum(map(len, sites)) > 60
    ax.set_xticks(range(len(sites)), sites, rotation=30 if long else 0,
                  ha="right" if long else "center", fontsize=8)
    ax.set_xlabel("site (input → output)")


def _plot(ax: Axes, metric: str, x: Sequence[float], y: Sequence[float], label: str,
          color: object) -> None:
    raw = np.asarray(y, dtype=np.float64)  # (n_points,)
    shown = clip_mi(metric, raw)
    ax.plot(x, shown, "-", color=color, label=label, linewidth=1.6)
    hit = shown != raw  # points that were clipped: hollow markers
    ax.plot(np.asarray(x)[~hit], shown[~hit], "o", color=color, markersize=4.5)
    if hit.any():
        ax.plot(np.asarray(x)[hit], shown[hit], "o", markerfacecolor="white",
                markeredgecolor=color, markersize=6)


def _series(rows: Sequence[Row], metric: str, level: str, step: int) -> dict[str, float]:
    return {str(r["site"]): float(r["value"]) for r in rows  # type: ignore[arg-type]
            if r["metric"] == metric and r["level"] == level and r["step"] == step}


def depth_figure(rows: Sequence[Row], metric: str, sites: Sequence[str],
                 levels: Sequence[str], steps: Sequence[int]) -> Figure:
    """Left: ``metric`` at every site at the last step, one line per level. Right: the
    metric over training steps, one line per site (first level)."""
    m = info(metric)
    colors = plt.get_cmap("viridis")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    last = steps[-1]
    for k, level in enumerate(levels):
        s = _series(rows, metric, level, last)
        xs = [sites.index(site) for site in sites if site in s]
        _plot(a1, metric, xs, [s[site] for site in sites if site in s], level or m.label,
              colors(k / max(1, len(levels) - 1) * 0.85))
    _site_ticks(a1, sites)
    a1.set(ylabel=m.label, title=f"against depth (step {last})")
    level0 = levels[0]
    for k, site in enumerate(sites):
        pts = sorted((int(r["step"]), float(r["value"]))  # type: ignore[call-overload,arg-type]
                     for r in rows
                     if r["metric"] == metric and r["level"] == level0 and r["site"] == site)
        if pts:
            xs_, ys_ = zip(*pts, strict=True)
            _plot(a2, metric, xs_, ys_, site, colors(k / max(1, len(sites) - 1) * 0.85))
    if len(steps) > 1 and steps[0] > 0:
        a2.set_xscale("log")
    a2.set(xlabel="training step", ylabel=m.label,
           title=f"over training ({level0})" if level0 else "over training")
    for ax in (a1, a2):
        _style(ax)
        if m.log_scale and all(float(r["value"]) > 0  # type: ignore[arg-type]
                               for r in rows if r["metric"] == metric):
            ax.set_yscale("log")
        if len(ax.get_legend_handles_labels()[0]) > 1:  # a legend only for several lines
            ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def information_plane_figure(rows: Sequence[Row], sites: Sequence[str],
                             steps: Sequence[int], root: str) -> Figure | None:
    """I(H;X) against the k-NN I(H;root) for every site, one point per step (larger
    later); None without both metrics."""
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    colors = plt.get_cmap("viridis")
    drawn = False
    for k, site in enumerate(sites):
        pts = []
        for st in steps:
            x = _series(rows, "mi_input", "", st).get(site)
            y = _series(rows, "knn_mi", root, st).get(site)
            if x is not None and y is not None:
                pts.append((x, max(y, 0.0)))  # I >= 0: the k-NN estimate clipped at 0
        if not pts:
            continue
        drawn = True
        c = colors(k / max(1, len(sites) - 1) * 0.85)
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, "-", color=c, linewidth=1.2, alpha=0.7)
        ax.scatter(xs, ys, s=np.linspace(12, 60, len(xs)), color=c, label=site, zorder=3)
    if not drawn:
        plt.close(fig)
        return None
    _style(ax)
    ax.set(xlabel="I(H;X) (nats)", ylabel=f"I(H;{root}) k-NN (nats, clipped at 0)",
           title="information plane")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig
