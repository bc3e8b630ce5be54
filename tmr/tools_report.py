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
from tmr.tools import VERDICT_CODES, read_rows

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
                                         if r["metric"] == "mean_auroc")
              if not lv.startswith("planted.")]  # planted variables: tools_planted.png
    paths: list[Path] = []

    def save(fig: Any, stem: str) -> None:
        from matplotlib.ticker import NullFormatter

        for ax in fig.axes:  # a narrow log range would label its minor ticks on top of each other
            if ax.get_xscale() == "log":
                ax.xaxis.set_minor_formatter(NullFormatter())
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
    planted = _planted_levels(main)
    if planted:
        from tmr.planted import THRESHOLD

        fig, axes = plt.subplots(1, len(planted), figsize=(3.4 * len(planted), 3.2),
                                 squeeze=False, sharey=True)
        for ax, lv in zip(axes[0], planted, strict=True):
            for tool in tools:
                xs, ys = _curve(main, tool, "planted_decodability", lv)
                if not xs:
                    continue
                line, = ax.plot(xs, ys, "-", lw=1, label=tool)
                rev = dict(zip(*_curve(main, tool, "planted_revealed", lv), strict=True))
                for x, y in zip(xs, ys, strict=True):  # filled: the bound reveals it
                    ax.plot(x, y, "o", ms=4, color=line.get_color(),
                            mfc=line.get_color() if rev.get(x, 0.0) > 0 else "white")
            full = [r["value"] for r in main if r["metric"] == "planted_decodability_full"
                    and r["level"] == lv]
            if full:
                ax.axhline(float(np.mean(full)), color="grey", lw=0.8, ls="--")
            ax.axhline(THRESHOLD, color="k", lw=0.7, ls=":")
            ax.set(xscale="log", xlabel="scale (features kept)", ylim=(-0.1, 1.05),
                   title=lv.removeprefix("planted."))
        axes[0][0].set_ylabel("decodability from kept features")
        axes[0][-1].legend(fontsize=6)
        save(fig, "tools_planted")
    return paths


def _planted_levels(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(r["level"] for r in rows if r["metric"] == "planted_verdict"))


def planted_lines(rows: Sequence[Row]) -> list[str]:
    """Per planted variable a markdown table: for each tool (widest fit, lowest seed) the
    scale from which it keeps the variable, and at the largest scale where it discards it
    the intervention's tail displacement ε_v, the certified margin change D(ε_v) against
    the median margin g₀ and whether the bound reveals it (``tmr.planted``)."""
    main = _main_fit(rows)
    tools = list(dict.fromkeys(r["tool"] for r in main))
    lines: list[str] = []
    for lv in _planted_levels(main):
        name = lv.removeprefix("planted.")
        full = [r["value"] for r in main if r["level"] == lv
                and r["metric"] == "planted_decodability_full"]
        dec = f"{np.mean(full):.2f}" if full else "?"
        if all(r["value"] == VERDICT_CODES["absent"] for r in main
               if r["level"] == lv and r["metric"] == "planted_verdict"):
            lines += ["", f"Planted variable {name}: absent from this site (decodability "
                      f"{dec} from the whole site); no scheme can keep it.", ""]
            continue
        how = ("a real intervention" if any(
            r["value"] == 1.0 for r in main if r["level"] == lv
            and r["metric"] == "planted_intervention") else "the gap between its class means")
        lines += ["", f"Planted variable {name} (decodability {dec} from the whole site; ε_v "
                  f"from {how}):", "",
                  "| tool | width | kept from | discarded at | checked at | ε_v | D(ε_v) | g₀ "
                  "| revealed |", "|" + "---|" * 9]
        for tool in tools:
            at: dict[int, dict[str, float]] = {}
            for r in main:
                if r["tool"] == tool and r["level"] == lv and r["metric"].startswith(
                        "planted_"):
                    at.setdefault(r["scale"], {})[r["metric"]] = r["value"]
            if not at:
                continue
            scales = sorted(at)
            kept = [at[s].get("planted_verdict") == VERDICT_CODES["kept"] for s in scales]
            start = next((s for i, s in enumerate(scales) if all(kept[i:])), None)
            dropped = [s for s, k in zip(scales, kept, strict=True) if not k]
            bounded = [s for s in dropped if at[s].get("planted_tail_dim", 1.0) > 0]
            cells = [tool, str(main[[r["tool"] for r in main].index(tool)]["width"]),
                     str(start) if start is not None else "never",
                     ", ".join(map(str, dropped)) or "none"]
            if dropped and not bounded:
                cells += ["", "", "", "", "no tail: lost in the codes"]
            elif bounded:
                last = at[bounded[-1]]

                def fmt(metric: str, m: dict[str, float] = last) -> str:
                    if metric not in m:
                        return "n/a"
                    return f"{m[metric]:.0f}" if abs(m[metric]) >= 1000 else f"{m[metric]:.3g}"

                frac = last.get("planted_revealed_fraction")
                revealed = ("n/a" if frac is None else
                            f"{'yes' if last.get('planted_revealed', 0) > 0 else 'no'} "
                            f"({100 * frac:.0f} %)")
                cells += [str(bounded[-1]), fmt("planted_tail_displacement"),
                          fmt("planted_certified"),
                          fmt("planted_margin"), revealed]
            else:
                cells += ["", "", "", "", "nothing discarded"]
            lines.append("| " + " | ".join(cells) + " |")
    if lines:
        lines += ["", PLANTED_READING]
    return lines


PLANTED_READING = (
    "How to read the planted tables (scales are numbers of features kept): a tool keeps a "
    "variable at scale s when a linear probe on its first s features decodes it "
    "(chance-corrected balanced accuracy ≥ 0.5); at smaller scales the variable is left in "
    "the discarded directions. ε_v is how far a real "
    "intervention on the variable moves the activations inside those directions (median over "
    "inputs, or the largest gap between its class means where no intervention is "
    "recorded), and the bound certifies that no move of that size changes the margin by more "
    "than D(ε_v) (g₀: the median margin); both are checked at the largest scale that "
    "discards the variable and leaves some directions out (an SAE whose kept decoder "
    "directions span the whole site can still lose a variable in its nonlinear codes: 'no "
    "tail', which the bound cannot see). 'yes' "
    "means D(ε_v) reaches the input's margin g₀ on at least half the correctly predicted "
    "inputs (the share is in brackets): the bound does not vouch for discarding the "
    "variable; 'no' means that on most inputs it certifies that a change of that size "
    "cannot flip the prediction.")


def summary_lines(rows: Sequence[Row]) -> list[str]:
    """Markdown table: per tool (widest fit) at its largest scale the monosemantic fraction,
    mean AUROC per level, FVU, Δ accuracy, canonicity and the planted variables kept."""
    main = _main_fit(rows)
    tools = list(dict.fromkeys(r["tool"] for r in main))
    levels = list(dict.fromkeys(r["level"] for r in main if r["metric"] == "mean_auroc"
                                and not r["level"].startswith("planted.")))  # own tables
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
    return lines + planted_lines(rows)


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
    "tools_planted": "How well a linear probe on the kept features decodes each planted "
                     "variable (0 = chance, 1 = perfect); above the dotted line it is kept, "
                     "the dashed line is the whole site. Filled markers: the certified bound "
                     "reveals the variable at that scale. <b>Look for</b> a variable that "
                     "decides the label but is discarded at small scales with an open "
                     "marker: a failure the bound missed.",
}


def _blocks(lines: Sequence[str]) -> list[list[str]]:
    """Runs of markdown table lines, and of other non-empty lines."""
    out: list[list[str]] = []
    for ln in lines:
        if not ln:
            continue
        if out and out[-1][0].startswith("|") == ln.startswith("|"):
            out[-1].append(ln)
        else:
            out.append([ln])
    return out


def report_section(run_dir: str | Path) -> list[tuple[str, str, list[str]]]:
    """(title, html, markdown lines) for every ``RUN/tools/<site>/tool_scores.csv``: the
    summary table and the figures with their captions."""
    from tmr.report_html import figure, table

    out = []
    for csv_path in sorted(Path(run_dir).glob("tools/*/tool_scores.csv")):
        lines = summary_lines(read_rows(csv_path))
        body = ""
        for block in _blocks(lines):
            if block[0].startswith("|"):
                cells = [[html.escape(c.strip()) for c in ln.strip("|").split("|")]
                         for ln in block]
                text = ("discarded", "revealed", "kept from", "checked")  # left-aligned
                body += table(cells[0], cells[2:], numeric=[False, True] + [
                    not c.startswith(text) for c in cells[0][2:]])
            else:
                body += "".join(f"<p>{html.escape(ln)}</p>" for ln in block)
        body += "".join(
            figure(base64.b64encode(p.read_bytes()).decode(), CAPTIONS.get(p.stem, ""), p.stem)
            for p in sorted(csv_path.parent.glob("tools_*.png")))
        out.append((f"at {csv_path.parent.name}", body, lines))
    return out
