"""Figures (one per question) and the ``tmr report`` section of ``tool_scores.csv``.

Curves over the scale s use, per tool, its widest fit and lowest seed (the full ladder of
one dictionary); Matryoshka's scales are its prefixes.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tmr.metrics.features import MONO_AUROC
from tmr.tools import KEPT_AUROC, read_rows

Row = dict[str, Any]
QUESTIONS = {  # file stem -> (metric, level filter, y label, title)
    "tools_monosemantic": ("mono_fraction", "", "fraction of latents",
                           f"latents with a monosemantic feature (AUROC ≥ {MONO_AUROC})"),
    "tools_feature_depth": ("feature_depth", "", "mean level index (0 = root)",
                            "which level the kept features match (coarse → fine)"),
    "tools_faithfulness": ("delta_accuracy", "", "Δ task accuracy",
                           "faithfulness: site replaced by the reconstruction"),
    "tools_agreement": ("agreement", "", "agreement with the full network",
                        "faithfulness: prediction kept"),
    "tools_fvu": ("fvu", "", "FVU", "reconstruction error"),
}


def _main_fit(rows: Sequence[Row]) -> list[Row]:
    """Rows of each tool's widest fit at its lowest seed."""
    best: dict[str, tuple[int, int]] = {}
    for r in rows:
        if r["seed"] < 0:
            continue
        w, s = best.get(r["tool"], (-1, 1 << 30))
        if r["width"] > w or (r["width"] == w and r["seed"] < s):
            best[r["tool"]] = (r["width"], r["seed"])
    return [r for r in rows if best.get(r["tool"]) == (r["width"], r["seed"])]


def _curve(rows: Sequence[Row], tool: str, metric: str, level: str) -> tuple[list, list]:
    pts = sorted((r["scale"], r["value"]) for r in rows
                 if r["tool"] == tool and r["metric"] == metric and r["level"] == level)
    return [p[0] for p in pts], [p[1] for p in pts]


def figures(rows: Sequence[Row], out_dir: str | Path) -> list[Path]:
    """Write the figures of the module docstring under ``out_dir``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    main = _main_fit(rows)
    tools = list(dict.fromkeys(r["tool"] for r in main))
    levels = [lv for lv in dict.fromkeys(r["level"] for r in main
                                         if r["metric"] == "mean_auroc")]
    paths: list[Path] = []

    def save(fig: Any, stem: str) -> None:
        fig.tight_layout()
        p = out / f"{stem}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)

    if levels:  # which tool recovers which level
        fig, axes = plt.subplots(1, len(tools), figsize=(3.2 * len(tools), 3), squeeze=False,
                                 sharey=True)
        for ax, tool in zip(axes[0], tools, strict=True):
            for lv in levels:
                ax.plot(*_curve(main, tool, "mean_auroc", lv), "o-", ms=3, label=lv)
            ax.set(xscale="log", xlabel="scale (features kept)", title=tool)
        axes[0][0].set_ylabel("mean best AUROC per latent")
        axes[0][-1].legend(fontsize=6)
        save(fig, "tools_auroc_levels")
    for stem, (metric, level, ylabel, title) in QUESTIONS.items():
        if not any(r["metric"] == metric for r in main):
            continue
        fig, ax = plt.subplots(figsize=(4.8, 3.4))
        for tool in tools:
            xs, ys = _curve(main, tool, metric, level)
            if xs:
                ax.plot(xs, ys, "o-", ms=3, label=tool)
        ax.set(xscale="log", xlabel="scale (features kept)", ylabel=ylabel, title=title)
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
        save(fig, stem)
    canon = [r for r in rows if r["metric"].startswith("canonicity")]
    if canon:
        fig, ax = plt.subplots(figsize=(4.8, 3.4))
        for tool in dict.fromkeys(r["tool"] for r in canon):
            for metric, style in (("canonicity_seeds", "o-"), ("canonicity_widths", "s--")):
                xs, ys = _curve(canon, tool, metric, "")
                if xs:
                    ax.plot(xs, ys, style, ms=4, label=f"{tool} {metric.split('_')[1]}")
        ax.set(xscale="log", xlabel="dictionary width", ylabel="matched mean cosine",
               title="canonicity across seeds and widths", ylim=(0, 1.02))
        ax.legend(fontsize=6)
        save(fig, "tools_canonicity")
    planted = [lv for lv in dict.fromkeys(r["level"] for r in main
                                          if r["metric"] == "planted_kept")]
    if planted:
        fig, axes = plt.subplots(1, len(planted), figsize=(3.4 * len(planted), 3),
                                 squeeze=False, sharey=True)
        for ax, lv in zip(axes[0], planted, strict=True):
            for tool in tools:
                pts: dict[int, float] = {}
                for r in main:
                    if r["tool"] == tool and r["metric"] == "auroc" and r["level"] == lv:
                        pts[r["scale"]] = max(pts.get(r["scale"], 0.0), r["value"])
                if pts:
                    xs = sorted(pts)
                    ax.plot(xs, [pts[x] for x in xs], "o-", ms=3, label=tool)
            ax.axhline(KEPT_AUROC, color="k", lw=0.7, ls=":")
            ax.set(xscale="log", xlabel="scale", title=lv)
        axes[0][0].set_ylabel("best AUROC of the planted variable")
        axes[0][-1].legend(fontsize=6)
        save(fig, "tools_planted")
    return paths


def summary_lines(rows: Sequence[Row]) -> list[str]:
    """Markdown table: per tool (widest fit) at its largest scale the monosemantic fraction,
    mean AUROC per level, FVU, Δ accuracy, canonicity and the planted variables kept."""
    main = _main_fit(rows)
    tools = list(dict.fromkeys(r["tool"] for r in main))
    levels = list(dict.fromkeys(r["level"] for r in main if r["metric"] == "mean_auroc"))
    head = ["tool", "width", "mono fraction", *[f"AUROC {lv}" for lv in levels], "FVU",
            "Δ accuracy", "canonicity (seeds, mean over widths)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for tool in tools:
        mine = [r for r in main if r["tool"] == tool]
        top = max(r["scale"] for r in mine)

        def val(metric: str, level: str = "", rs: Sequence[Row] = mine, s: int = top) -> str:
            v = [r["value"] for r in rs if r["metric"] == metric and r["level"] == level
                 and r["scale"] == s]
            return f"{v[0]:.3f}" if v else ""

        canon = [r["value"] for r in rows if r["tool"] == tool
                 and r["metric"] == "canonicity_seeds"]
        cells = [tool, str(mine[0]["width"]), val("mono_fraction"),
                 *[val("mean_auroc", lv) for lv in levels], val("fvu"), val("delta_accuracy"),
                 f"{np.mean(canon):.3f}" if canon else ""]
        lines.append("| " + " | ".join(cells) + " |")
    planted = [lv for lv in dict.fromkeys(r["level"] for r in rows
                                          if r["metric"] == "planted_kept")]
    for lv in planted:
        lines += ["", f"Planted variable {lv}: " + "; ".join(
            f"{tool} {'keeps' if kept else 'discards'} it at scale {s}"
            for tool in tools
            for s, kept in [max(((r["scale"], r["value"] > 0) for r in main
                                 if r["tool"] == tool and r["metric"] == "planted_kept"
                                 and r["level"] == lv), default=(0, False))])]
    return lines


CAPTIONS = {  # figure stem -> what to look for
    "tools_auroc_levels": "Mean best-feature AUROC of each level's latents against the number "
                          "of features kept, one panel per tool. <b>Look for</b> which levels a "
                          "tool recovers at all, and whether coarse levels need few features.",
    "tools_monosemantic": "Fraction of latents with a single feature of AUROC ≥ 0.95. "
                          "<b>Look for</b> tools whose features are latents, not mixtures.",
    "tools_feature_depth": "Mean level index that the kept features match best (0 = root). "
                           "<b>Look for</b> a rise with scale: coarse features first, finer ones "
                           "split off as the dictionary grows.",
    "tools_faithfulness": "Change of task accuracy when the site is replaced by the "
                          "reconstruction at each scale. <b>Look for</b> the scale where it "
                          "reaches 0.",
    "tools_agreement": "Fraction of inputs whose prediction is unchanged by the replacement. "
                       "<b>Look for</b> 1.0 at the full width.",
    "tools_fvu": "Fraction of the site's variance left unexplained by the reconstruction.",
    "tools_canonicity": "Mean cosine of Hungarian-matched decoder directions across seeds "
                        "(circles) and across widths (squares). <b>Look for</b> values near 1: "
                        "a canonical dictionary does not depend on the seed.",
    "tools_planted": "Best AUROC of each planted variable among the kept features; above the "
                     "dotted line it counts as kept. <b>Look for</b> a dangerously irrelevant "
                     "variable that a tool discards at small scales.",
}


def report_section(run_dir: str | Path) -> list[tuple[str, str, list[str]]]:
    """(title, html, markdown lines) for every ``RUN/tools/<site>/tool_scores.csv``: the
    summary table and the figures with their captions."""
    from tmr.report_html import figure, table

    out = []
    for csv_path in sorted(Path(run_dir).glob("tools/*/tool_scores.csv")):
        lines = summary_lines(read_rows(csv_path))
        rows = [[html.escape(c.strip()) for c in ln.strip("|").split("|")]
                for ln in lines if ln.startswith("|")]
        body = table(rows[0], rows[2:], numeric=[False, True] + [True] * (len(rows[0]) - 2))
        body += "".join(f"<p>{html.escape(ln)}</p>" for ln in lines
                        if ln and not ln.startswith("|"))
        body += "".join(
            figure(base64.b64encode(p.read_bytes()).decode(), CAPTIONS.get(p.stem, ""), p.stem)
            for p in sorted(csv_path.parent.glob("tools_*.png")))
        out.append((f"at {csv_path.parent.name}", body, lines))
    return out
