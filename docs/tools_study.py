"""Study: which interpretability tool recovers which level, and at what scale coarse
features give way to finer ones, next to the probes (docs/studies/tools_levels.md).

Reads the saved tables of two runs and prints the page's tables (markdown); writes the
figures to docs/img/:

    make demo
    for s in layers.0.post layers.1.post layers.2.post; do
      tmr evaluate-tools runs/demo_cnn --site $s --tools sae-topk,sae-relu,matryoshka,pca,ntk \\
          --widths 1x,2x,4x,8x --seeds 2 --device cpu
    done
    for s in layers.0.post layers.1.post; do
      tmr evaluate-tools runs/pcfg_tf --site $s --tools sae-topk,matryoshka,pca \\
          --widths 1x,2x,4x,8x --seeds 2 --per-token --n-train 1000 --n-eval 256 --device cpu
    done
    PYTHONPATH=. python docs/tools_study.py [--demo runs/demo_cnn] [--pcfg runs/pcfg_tf] \
        [--planted runs/planted]

``--planted``: a run on configs/rhm_planted.toml evaluated with ``tmr evaluate-tools``; its
planted tables are printed for every evaluated site and the tools_planted.png of
``--planted-figure-site`` is copied to docs/img.

Definitions (all from ``tools/<site>/tool_scores.csv`` and ``probe_scores.csv``):

- AUROC of a level: ``mean_auroc`` at the tool's widest width and largest scale (every
  feature kept), mean over seeds; monosemantic fraction likewise (level "": all latents).
- feature depth D(s): ``feature_depth``, the mean level index (0 = root, L − 1 = leaves)
  of the kept features that match some latent (AUROC ≥ 0.75), at scale s (features kept,
  most relevant first) of the widest fit at seed 0.
- split scale s*: the smallest scale of that ladder with D(s) > (L − 1)/2, i.e. from which
  the matched features are on average nearer the leaves than the root ("never" if D stays
  at or below the middle). Split width w*: the smallest dictionary width whose whole
  dictionary (s = width, mean over seeds; Matryoshka: its nested prefix of that width) has
  D > (L − 1)/2.
- probe selectivity: ``selectivity`` (test accuracy minus control-task accuracy) of the
  run's linear probes, position "mean", test split, last step.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tmr.tools import read_rows

Row = dict[str, Any]


def site_rows(run: Path) -> dict[str, list[Row]]:
    return {p.parent.name: read_rows(p) for p in sorted(run.glob("tools/*/tool_scores.csv"))}


def levels_of(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(r["level"] for r in rows if r["metric"] == "mean_auroc"
                              and not r["level"].startswith("planted.")))


def top_value(rows: Sequence[Row], tool: str, metric: str, level: str = "") -> float:
    """Mean over seeds of ``metric`` at the tool's widest width and largest scale."""
    mine = [r for r in rows if r["tool"] == tool and r["seed"] >= 0]
    w = max(r["width"] for r in mine)
    top = max(r["scale"] for r in mine if r["width"] == w)
    vals = [r["value"] for r in mine if r["width"] == w and r["scale"] == top
            and r["metric"] == metric and r["level"] == level]
    return float(np.mean(vals)) if vals else float("nan")


def depth_curve(rows: Sequence[Row], tool: str) -> tuple[list[int], list[float]]:
    mine = [r for r in rows if r["tool"] == tool and r["seed"] == 0]
    w = max(r["width"] for r in mine)
    pts = sorted((r["scale"], r["value"]) for r in mine if r["width"] == w
                 and r["metric"] == "feature_depth")
    return [p[0] for p in pts], [p[1] for p in pts]


def width_depths(rows: Sequence[Row], tool: str) -> dict[int, float]:
    """Whole-dictionary feature depth per width (mean over seeds); a Matryoshka SAE's
    dictionary of width w is its nested prefix of w features (scale w of its widest fit)."""
    widths = {r["width"] for r in rows if r["seed"] >= 0 and r["tool"].startswith("sae")}
    out: dict[int, list[float]] = {}
    for r in rows:
        whole = r["scale"] in widths if tool == "matryoshka" else r["scale"] == r["width"]
        if r["tool"] == tool and r["metric"] == "feature_depth" and whole \
                and r["seed"] >= 0 and not np.isnan(r["value"]):
            out.setdefault(r["scale"], []).append(r["value"])
    return {w: float(np.mean(v)) for w, v in sorted(out.items())}


def first_above(xs: Sequence[int], ys: Sequence[float], c: float) -> str:
    return next((str(x) for x, y in zip(xs, ys, strict=True) if y > c), "never")


def probe_selectivity(run: Path) -> dict[tuple[str, str], float]:
    with (run / "probe_scores.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] == "selectivity"
                and r["split"] == "test" and r["position"] == "mean"]
    last = max(int(r["step"]) for r in rows)
    return {(r["site"], r["level"]): float(r["value"]) for r in rows if int(r["step"]) == last}


def fmt(v: float) -> str:
    return "" if np.isnan(v) else f"{v:.2f}"


def tables(name: str, run: Path) -> list[str]:
    sites = site_rows(run)
    out = [f"### {name}", ""]
    levels = levels_of(next(iter(sites.values())))
    head = ["site", "tool", *[f"AUROC {lv}" for lv in levels], "mono fraction"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for site, rows in sites.items():
        for tool in dict.fromkeys(r["tool"] for r in rows):
            cells = [site, tool, *[fmt(top_value(rows, tool, "mean_auroc", lv))
                                   for lv in levels], fmt(top_value(rows, tool, "mono_fraction"))]
            out.append("| " + " | ".join(cells) + " |")
    sel = probe_selectivity(run)
    out += ["", "Probe selectivity (test accuracy − control accuracy, mean over positions):", "",
            "| site | " + " | ".join(levels) + " |", "|" + "---|" * (len(levels) + 1)]
    for site in sites:
        out.append(f"| {site} | " + " | ".join(fmt(sel.get((site, lv), float("nan")))
                                                for lv in levels) + " |")
    mid = (len(levels) - 1) / 2
    out += ["", f"Feature depth (0 = {levels[0]}, {len(levels) - 1} = {levels[-1]}; split "
            f"when D > {mid:g}):", "",
            "| site | tool | widest width | D(1) | D(widest) | split scale s* | "
            "D of the whole dictionary at width 1×, 2×, 4×, 8× | split width w* |",
            "|" + "---|" * 8]
    for site, rows in sites.items():
        for tool in dict.fromkeys(r["tool"] for r in rows if r["seed"] >= 0):
            xs, ys = depth_curve(rows, tool)
            wd = width_depths(rows, tool)
            per_w = ", ".join(fmt(d) for d in wd.values())
            cells = [site, tool, str(xs[-1]), fmt(ys[0]), fmt(ys[-1]), first_above(xs, ys, mid),
                     per_w, first_above(list(wd), list(wd.values()), mid)]
            out.append("| " + " | ".join(cells) + " |")
    return [*out, ""]


def figures(runs: dict[str, Path], img: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(name, site, rows) for name, run in runs.items()
              for site, rows in site_rows(run).items()]
    colors = {"sae-topk": "C0", "sae-relu": "C4", "matryoshka": "C1", "pca": "C2", "ntk": "C3"}

    def grid() -> tuple[Any, list[Any]]:
        """Three panels a row; the spare last axis holds the legend."""
        nrow = (len(panels) + 1 + 2) // 3
        fig, axes = plt.subplots(nrow, 3, figsize=(10, 3.1 * nrow), squeeze=False)
        flat = list(axes.ravel())
        for ax in flat[len(panels):]:
            ax.axis("off")
        return fig, flat

    def legend(fig: Any, axes: list[Any]) -> None:
        handles, labels = {}, {}
        for ax in axes[:len(panels)]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(lab, h)
                labels[lab] = lab
        axes[-1].legend(list(handles.values()), list(labels), loc="center", fontsize=9)

    fig, axes = grid()
    for ax, (name, site, rows) in zip(axes, panels, strict=False):
        levels = levels_of(rows)
        tools = list(dict.fromkeys(r["tool"] for r in rows))
        bw = 0.8 / len(tools)
        for i, tool in enumerate(tools):
            ax.bar(np.arange(len(levels)) + i * bw - 0.4 + bw / 2,
                   [top_value(rows, tool, "mean_auroc", lv) for lv in levels], bw,
                   label=tool, color=colors.get(tool))
        ax.set_xticks(range(len(levels)), levels, fontsize=7)
        ax.set(ylim=(0.5, 1.0), title=f"{name}: {site}", ylabel="mean best-feature AUROC")
        ax.title.set_fontsize(9)
    legend(fig, axes)
    fig.tight_layout()
    paths = [img / "tools_levels_auroc.png"]
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    fig, axes = grid()
    for ax, (name, site, rows) in zip(axes, panels, strict=False):
        levels = levels_of(rows)
        for tool in dict.fromkeys(r["tool"] for r in rows if r["seed"] >= 0):
            ax.plot(*depth_curve(rows, tool), "o-", ms=3, label=tool, color=colors.get(tool))
        ax.axhline((len(levels) - 1) / 2, color="k", lw=0.7, ls=":")
        ax.set(xscale="log", xlabel="scale (features kept)", ylim=(-0.1, len(levels) - 0.9),
               title=f"{name}: {site}")
        ax.set_yticks(range(len(levels)), levels, fontsize=7)
        ax.set_ylabel("mean level of matched features", fontsize=8)
        ax.title.set_fontsize(9)
    legend(fig, axes)
    fig.tight_layout()
    paths.append(img / "tools_levels_depth.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", type=Path, default=Path("runs/demo_cnn"))
    ap.add_argument("--pcfg", type=Path, default=Path("runs/pcfg_tf"))
    ap.add_argument("--planted", type=Path, default=Path("runs/planted"))
    ap.add_argument("--planted-figure-site", default="layers.1.post")
    ap.add_argument("--img", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    runs = {"RHM CNN": args.demo, "PCFG transformer": args.pcfg}
    for name, run in runs.items():
        print("\n".join(tables(name, run)))
    for p in figures(runs, args.img):
        print(f"wrote {p}")
    from tmr.tools_report import planted_lines

    for csv_path in sorted(args.planted.glob("tools/*/tool_scores.csv")):
        print(f"\n### planted run, {csv_path.parent.name}")
        print("\n".join(planted_lines(read_rows(csv_path))))
        fig = csv_path.parent / "tools_planted.png"
        if csv_path.parent.name == args.planted_figure_site and fig.is_file():
            out = args.img / "tools_levels_planted.png"
            out.write_bytes(fig.read_bytes())
            print(f"copied {fig} to {out}")


if __name__ == "__main__":
    main()
