"""``tmr report RUN_DIR``: an HTML page (plots embedded) and a markdown summary of a run.

Draws only from saved tables in the run directory: ``layer_metrics.csv`` (written
with :func:`tmr.metrics.table.write_table`) and, if present, ``probe_scores.csv``
(issue 4's probes), both tidy with the columns of :data:`tmr.metrics.table.COLUMNS`.
Nothing is recomputed from activations. Run as ``python -m tmr.report RUN_DIR``.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import sys
from pathlib import Path

import numpy as np

from tmr.metrics.claims import paper000_claims
from tmr.metrics.table import read_table

__all__ = ["claims_from_rows", "write_report"]

Row = dict[str, object]
# Metric and level used for each paper-000 claim: the label level is the root.
CLAIM_SOURCES = {"effective_rank": ("effective_rank", ""), "intrinsic_dim": ("twonn", ""),
                 "mi_label": ("knn_mi", None), "mi_input": ("mi_input", ""),
                 "separation": ("separation", None)}


def _sites(rows: list[Row]) -> list[str]:
    """Sites in order of first appearance (tables are written in forward order)."""
    return list(dict.fromkeys(str(r["site"]) for r in rows))


def _levels(rows: list[Row]) -> list[str]:
    return [lv for lv in dict.fromkeys(str(r["level"]) for r in rows) if lv]


def _series(rows: list[Row], metric: str, level: str, step: int) -> dict[str, float]:
    return {str(r["site"]): float(r["value"]) for r in rows  # type: ignore[arg-type]
            if r["metric"] == metric and r["level"] == level and r["step"] == step}


def claims_from_rows(rows: list[Row], step: int | None = None) -> list[Row]:
    """Paper-000 claims (3)-(7) at ``step`` (default: the last) from tidy metric rows."""
    if not rows:
        return []
    step = max(int(r["step"]) for r in rows) if step is None else step  # type: ignore[call-overload]
    sites, levels = _sites(rows), _levels(rows)
    root = levels[0] if levels else ""
    per_layer: dict[str, list[float]] = {}
    for key, (metric, level) in CLAIM_SOURCES.items():
        series = _series(rows, metric, root if level is None else level, step)
        if len(series) >= 2:
            per_layer[key] = [series.get(s, float("nan")) for s in sites if s in series]
    return paper000_claims(per_layer)


def _png(fig: object) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(rows: list[Row], probes: list[Row]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []
    steps = sorted({int(r["step"]) for r in rows})  # type: ignore[call-overload]
    last, sites, levels = steps[-1], _sites(rows), _levels(rows)
    heat_src = [r for r in probes if r["metric"] == "accuracy" and r["split"] == "test"]
    heat_metric = "probe test accuracy" if heat_src else "k-NN I(H;Y) (nats)"
    heat_src = heat_src or [r for r in rows if r["metric"] == "knn_mi"]
    if heat_src:
        hstep = max(int(r["step"]) for r in heat_src)  # type: ignore[call-overload]
        hs, hl = _sites(heat_src), _levels(heat_src)
        grid = np.full((len(hs), len(hl)), np.nan)  # (sites, levels)
        for r in heat_src:
            if r["step"] == hstep and r["level"] in hl:
                grid[hs.index(str(r["site"])), hl.index(str(r["level"]))] = r["value"]
        fig, ax = plt.subplots(figsize=(1.2 * len(hl) + 2, 0.4 * len(hs) + 1.5))
        im = ax.imshow(grid, aspect="auto", cmap="viridis")
        ax.set(xticks=range(len(hl)), xticklabels=hl, yticks=range(len(hs)), yticklabels=hs,
               title=f"{heat_metric}, step {hstep}")
        fig.colorbar(im)
        out.append((f"layer x level: {heat_metric}", _png(fig)))
        plt.close(fig)
    metrics = list(dict.fromkeys(str(r["metric"]) for r in rows))
    for metric in metrics:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2))
        mlevels = _levels([r for r in rows if r["metric"] == metric]) or [""]
        for level in mlevels:
            s = _series(rows, metric, level, last)
            a1.plot([sites.index(k) for k in s], list(s.values()), "o-", label=level or metric)
        a1.set(xlabel="depth (site index)", title=f"{metric} vs depth, step {last}")
        a1.legend(fontsize=7)
        level0 = mlevels[0]
        for site in sites:
            pts = sorted((int(r["step"]), float(r["value"]))  # type: ignore[call-overload,arg-type]
                         for r in rows
                         if r["metric"] == metric and r["level"] == level0 and r["site"] == site)
            if pts:
                a2.plot(*zip(*pts, strict=True), "o-", label=site)
        a2.set(xlabel="step", title=f"{metric} ({level0 or 'layer'}) vs step")
        if len(steps) > 1 and steps[0] > 0:
            a2.set_xscale("log")
        a2.legend(fontsize=6)
        out.append((f"{metric}", _png(fig)))
        plt.close(fig)
    root = levels[0] if levels else ""
    fig, ax = plt.subplots(figsize=(5, 4))
    for site in sites:
        pts = []
        for st in steps:
            x = _series(rows, "mi_input", "", st).get(site)
            y = _series(rows, "knn_mi", root, st).get(site)
            if x is not None and y is not None:
                pts.append((x, y))
        if pts:
            ax.plot(*zip(*pts, strict=True), "o-", label=site)
    ax.set(xlabel="I(H;X) (nats)", ylabel=f"I(H;{root}) k-NN (nats)", title="information plane")
    ax.legend(fontsize=6)
    out.append(("information plane", _png(fig)))
    plt.close(fig)
    return out


def _claims_markdown(claims: list[Row]) -> list[str]:
    lines = ["| claim | statement | holds | Spearman vs depth | strict | geometric ratio | R² "
             "| values |", "|---|---|---|---:|---|---:|---:|---|"]
    for c in claims:
        ratio = f"{c['ratio']:.3g}" if "ratio" in c else ""
        r2 = f"{c['r2']:.3f}" if "r2" in c else ""
        vals = ", ".join(f"{v:.3g}" for v in c["values"])  # type: ignore[attr-defined]
        lines.append(f"| ({c['claim']}) | {c['statement']} | {'yes' if c['holds'] else 'no'} "
                     f"| {c['spearman']:.2f} | {c['strict']} | {ratio} | {r2} | {vals} |")
    return lines


def _saved_analyses(run: Path) -> list[tuple[str, list[str], list[str]]]:
    """(title, embedded PNGs, markdown table lines) of every ``tmr coarse-grain``
    (``coarse_grain/<site>_<scheme>/``) and ``tmr bound`` (``bounds/``) output saved
    in the run directory; read as saved, nothing is recomputed."""
    out: list[tuple[str, list[str], list[str]]] = []
    for d in sorted(p for p in run.glob("coarse_grain/*") if p.is_dir()):
        table: list[str] = []
        summary = d / "summary.json"
        if summary.is_file():
            info = json.loads(summary.read_text())
            table = ["| key | value |", "|---|---|"] + [
                f"| {k} | {v} |" for k, v in info.items() if not isinstance(v, dict | list)]
        pngs = [base64.b64encode(p.read_bytes()).decode() for p in sorted(d.glob("*.png"))]
        out.append((f"coarse-grain {d.name}", pngs, table))
    for csv_path in sorted(run.glob("bounds/*.csv")):
        with csv_path.open() as f:
            rows = list(csv.reader(f))
        table = ["| " + " | ".join(r) + " |" for r in rows[:1]] + [
            "|" + "---|" * len(rows[0])] + ["| " + " | ".join(r) + " |" for r in rows[1:]]
        png = csv_path.with_suffix(".png")
        pngs = [base64.b64encode(png.read_bytes()).decode()] if png.is_file() else []
        out.append((f"bounds {csv_path.stem}", pngs, table if rows else []))
    return out


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` and ``summary.md`` for ``run_dir``; return their paths."""
    run = Path(run_dir)
    table = run / "layer_metrics.csv"
    if not table.exists():
        raise FileNotFoundError(f"{table} not found: record layer metrics first "
                                "(tmr.metrics.table.write_table)")
    rows = read_table(table)
    probes = read_table(run / "probe_scores.csv") if (run / "probe_scores.csv").exists() else []
    claims = claims_from_rows(rows)
    dest = Path(out_dir) if out_dir is not None else run
    dest.mkdir(parents=True, exist_ok=True)
    steps = sorted({int(r["step"]) for r in rows})  # type: ignore[call-overload]
    md = [f"# Report: {run.name}", "",
          f"{len(_sites(rows))} sites, levels {_levels(rows)}, steps {steps}.", "",
          "## Paper 000 claims (last step)", "", *_claims_markdown(claims), "",
          "Trend holds when Spearman(depth) >= 0.8 in the claimed direction; claim (7) "
          "needs a log-linear fit with ratio < 1 and R² >= 0.9.", ""]
    saved = _saved_analyses(run)
    md += [line for title, _, lines in saved if lines
           for line in (f"## {title}", "", *lines, "")]
    # --- interpretability tools (``tmr evaluate-tools``): only where tool_scores.csv exists
    from tmr.tools_report import report_section

    tool_sections = report_section(run)
    md += [line for title, _, lines in tool_sections for line in (f"## {title}", "", *lines, "")]
    # ---
    summary = dest / "summary.md"
    summary.write_text("\n".join(md))
    body = [f"<h1>Report: {html.escape(run.name)}</h1>", "<h2>Paper 000 claims</h2>",
            "<pre>" + html.escape("\n".join(_claims_markdown(claims))) + "</pre>"]
    for title, png in _plots(rows, probes):
        body.append(f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{png}'>")
    for title, pngs, lines in saved:
        body.append(f"<h2>{html.escape(title)}</h2>")
        if lines:
            body.append("<pre>" + html.escape("\n".join(lines)) + "</pre>")
        body += [f"<img src='data:image/png;base64,{b}'>" for b in pngs]
    body += [f"<h2>{html.escape(title)}</h2>{section}" for title, section, _ in tool_sections]
    page = dest / "report.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'><title>TMR report"
                    "</title></head><body>" + "\n".join(body) + "</body></html>")
    return page, summary


if __name__ == "__main__":  # pragma: no cover
    for p in write_report(sys.argv[1]):
        print(p)
