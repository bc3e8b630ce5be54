"""``tmr report RUN_DIR``: one self-contained HTML page and a markdown summary of a run.

Draws only from what the run directory saved: ``layer_metrics.csv`` (written with
:func:`tmr.metrics.table.write_table`), and where present ``probe_scores.csv``,
``config.json``, ``metrics.jsonl`` and the outputs of ``tmr coarse-grain`` and
``tmr bound``. Nothing is recomputed from activations. Run as
``python -m tmr.report RUN_DIR``.

The page is a header (model, data file, generator parameters, seed, steps, final
accuracies), a table of contents and one section per entry of :data:`SECTIONS`. A
section is a function ``section(run: RunData) -> (title, html) | None`` (None: nothing
to show for this run); pass more with ``write_report(..., extra_sections=[...])`` or
append to :data:`SECTIONS`.

Mutual-information estimates are plotted clipped at 0 and tabled raw (see
:mod:`tmr.report_figures`).
"""

from __future__ import annotations

import html
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from tmr import report_figures as F
from tmr.io import atomic_path
from tmr.metrics.claims import GEOMETRIC_MIN_R2, MONOTONE_MIN_RHO, paper000_claims
from tmr.metrics.table import read_table
from tmr.report_html import figure, page, png_base64, table
from tmr.tools_report import report_section as tool_sections

__all__ = ["SECTIONS", "RunData", "Section", "claims_from_rows", "write_report"]

Row = dict[str, object]
# Metric and level used for each paper-000 claim: the label level (None) is the root.
CLAIM_METRICS = {"effective_rank": ("effective_rank", ""), "intrinsic_dim": ("twonn", ""),
                 "mi_label": ("knn_mi", None), "mi_input": ("mi_input", ""),
                 "separation": ("separation", None)}
MI_NOTE = ("Mutual informations are ≥ 0, but the k-NN estimator (Ross 2014) is biased and "
           "can return small negative values on discrete or low-dimensional layers (a "
           "one-hot embedding, for instance). Figures draw such estimates at 0 (hollow "
           "markers); tables and claims use the raw estimate, marked †.")


def _sites(rows: Sequence[Row]) -> list[str]:
    """Sites in order of first appearance (tables are written in forward order)."""
    return list(dict.fromkeys(str(r["site"]) for r in rows))


def _levels(rows: Sequence[Row]) -> list[str]:
    return [lv for lv in dict.fromkeys(str(r["level"]) for r in rows) if lv]


def claims_from_rows(rows: list[Row], step: int | None = None) -> list[Row]:
    """Paper-000 claims (3)-(7) at ``step`` (default: the last) from tidy metric rows,
    as :func:`tmr.metrics.claims.paper000_claims` returns them (with verdict and reason)."""
    if not rows:
        return []
    step = max(int(r["step"]) for r in rows) if step is None else step  # type: ignore[call-overload]
    sites, levels = _sites(rows), _levels(rows)
    root = levels[0] if levels else ""
    per_layer: dict[str, list[float]] = {}
    for key, (metric, level) in CLAIM_METRICS.items():
        lv = root if level is None else level
        series = {str(r["site"]): float(r["value"]) for r in rows  # type: ignore[arg-type]
                  if r["metric"] == metric and r["level"] == lv and r["step"] == step}
        if len(series) >= 2:
            per_layer[key] = [series[s] for s in sites if s in series]
    return paper000_claims(per_layer)


@dataclass
class RunData:
    """Everything a section may draw from; loaded once by :func:`write_report`."""

    run: Path                      # the run directory
    dest: Path                     # where report.html goes (links are relative to it)
    rows: list[Row]                # layer_metrics.csv
    probes: list[dict[str, str]]   # probe_scores.csv as text ([] when absent)
    config: dict[str, Any] = field(default_factory=dict)  # config.json ({} when absent)
    final: dict[str, Any] = field(default_factory=dict)   # last line of metrics.jsonl
    claims: list[Row] = field(default_factory=list)

    @property
    def sites(self) -> list[str]:
        return _sites(self.rows)

    @property
    def levels(self) -> list[str]:
        return _levels(self.rows)

    @property
    def steps(self) -> list[int]:
        return sorted({int(r["step"]) for r in self.rows})  # type: ignore[call-overload]

    def link(self, path: Path | str, text: str | None = None) -> str:
        """An ``<a>`` to ``path`` relative to the page, or the plain name if it is missing."""
        p = Path(path)
        label = html.escape(text or p.name)
        if not p.exists():
            return f"<code>{label}</code>"
        rel = os.path.relpath(p.resolve(), self.dest.resolve())
        return f'<a href="{html.escape(Path(rel).as_posix())}">{label}</a>'


Section = Callable[[RunData], "tuple[str, str] | None"]


def _fmt(v: float) -> str:
    return "nan" if v != v else f"{v:.3g}"


def _raw(metric: str, v: float) -> str:
    """A table cell: the raw value, marked † when an MI estimate is below 0."""
    return _fmt(v) + ("†" if metric in F.MI_METRICS and v < 0 else "")


def claims_section(run: RunData) -> tuple[str, str] | None:
    """The paper-000 claims table: statement, source, test, per-layer values, verdict."""
    intro = ("<p>Paper 000 reads a trained network as a progressive coarse-graining and "
             "makes five claims about how its layers change with depth. Each is tested on "
             f"the sites of this run at step {run.steps[-1]}, input first.</p>")
    if not run.claims:
        return "Paper 000 claims", intro + ("<p class='note'>Not testable: the run recorded "
                                            "none of the metrics the claims need.</p>")
    rows = []
    for c in run.claims:
        metric = CLAIM_METRICS[str(c["metric"])][0]
        vals = " → ".join(_raw(metric, float(v)) for v in c["values"])  # type: ignore[attr-defined]
        css = str(c["verdict"]).replace(" ", "-")
        rows.append([f"({c['claim']})", html.escape(str(c["statement"])),
                     html.escape(str(c["source"])), html.escape(str(c["test"])),
                     html.escape(vals),
                     f'<span class="badge {css}">{html.escape(str(c["verdict"]))}</span>'
                     f'<span class="reason">{html.escape(str(c["reason"]))}</span>'])
    counts = {v: sum(c["verdict"] == v for c in run.claims)
              for v in ("holds", "fails", "not testable")}
    intro += "<p>" + ", ".join(f'<span class="badge {v.replace(" ", "-")}">{n} {v}</span>'
                               for v, n in counts.items() if n) + "</p>"
    body = table(["claim", "statement", "source", "test", "values, input → output", "verdict"],
                 rows,
                 css_class="claims")
    note = (f"<p class='note'>A trend holds at Spearman ρ ≥ {MONOTONE_MIN_RHO} in the claimed "
            f"direction (one small inversion in six layers still passes); claim (7) needs a "
            f"log-linear fit with per-layer ratio &lt; 1 and R² ≥ {GEOMETRIC_MIN_R2}. Y is "
            f"the root level. {MI_NOTE}</p>")
    return "Paper 000 claims", intro + body + note


def probes_section(run: RunData) -> tuple[str, str] | None:
    """Layer × level heatmaps of probe test accuracy and selectivity."""
    if not run.probes:
        return None
    from tmr.plots import layer_level_figure, layer_level_table

    captions = {
        "accuracy": "<b>Probe test accuracy.</b> Each cell: accuracy of a linear probe "
                    "reading one latent level (column, coarse to fine) from one site "
                    "(row, input at top), on held-out samples, averaged over positions. "
                    "<b>Look for</b> where each level becomes readable: in a network that "
                    "builds the hierarchy bottom-up, coarse levels light up only deep down.",
        "selectivity": "<b>Selectivity</b>: probe accuracy minus the accuracy of the same "
                       "probe trained on shuffled labels (a control for what a linear probe "
                       "memorises). <b>Look for</b> cells well above 0: only those show "
                       "information the site really holds.",
    }
    parts = []
    for metric, caption in captions.items():
        try:
            sites, levels, values, at = layer_level_table(run.probes, metric=metric)
        except ValueError:
            continue
        fig = layer_level_figure(sites, levels, values, f"{metric} (test split, step {at})")
        parts.append(figure(png_base64(fig), caption, f"{metric} heatmap"))
        plt.close(fig)
    return ("Layer × level probes", "".join(parts)) if parts else None


def metrics_table_section(run: RunData) -> tuple[str, str] | None:
    """Every metric at every site at the last step, raw."""
    last, sites = run.steps[-1], run.sites
    metrics = list(dict.fromkeys(str(r["metric"]) for r in run.rows))
    keys = sorted(dict.fromkeys((str(r["metric"]), str(r["level"])) for r in run.rows),
                  key=lambda k: (metrics.index(k[0]), ["", *run.levels].index(k[1])))
    rows, negative = [], False
    for metric, level in keys:
        got = {str(r["site"]): float(r["value"]) for r in run.rows  # type: ignore[arg-type]
               if r["metric"] == metric and r["level"] == level and r["step"] == last}
        negative |= metric in F.MI_METRICS and any(v < 0 for v in got.values())
        name = html.escape(F.info(metric).label) + (f" <span class='note'>({level})</span>"
                                                    if level else "")
        rows.append([name] + [_raw(metric, got[s]) if s in got else "" for s in sites])
    body = table(["metric"] + [f"<code>{html.escape(s)}</code>" for s in sites], rows,
                 numeric=[False] + [True] * len(sites))
    note = f"<p class='note'>{MI_NOTE}</p>" if negative else ""
    return f"Metrics at step {last}", body + note


def metric_figures_section(run: RunData) -> tuple[str, str] | None:
    """One figure per metric: against depth (site names as ticks) and over training."""
    parts = []
    for metric in dict.fromkeys(str(r["metric"]) for r in run.rows):
        sub = [r for r in run.rows if r["metric"] == metric]
        m = F.info(metric)
        fig = F.depth_figure(sub, metric, run.sites, _levels(sub) or [""], run.steps)
        clip = (" Estimates below 0 are drawn at 0 (hollow markers); the table above has "
                "the raw values." if metric in F.MI_METRICS
                and any(float(r["value"]) < 0 for r in sub) else "")  # type: ignore[arg-type]
        caption = (f"<b>{html.escape(m.label)}</b> ({html.escape(m.what)}). Left: every "
                   f"site at the last step, one line per level; right: each site over "
                   f"training. <b>Look for</b>: {html.escape(m.look_for)}.{clip}")
        parts.append(f"<h3>{html.escape(m.label)}</h3>"
                     + figure(png_base64(fig), caption, f"{metric} against depth and step"))
        plt.close(fig)
    return "Metrics against depth and training", "".join(parts)


def information_plane_section(run: RunData) -> tuple[str, str] | None:
    """I(H;X) against I(H;root) over training, one trajectory per site."""
    root = run.levels[0] if run.levels else ""
    fig = F.information_plane_figure(run.rows, run.sites, run.steps, root)
    if fig is None:
        return None
    caption = ("<b>Information plane</b> (Shwartz-Ziv & Tishby 2017): what each site keeps "
               f"of the input, I(H;X), against what it knows of the root, I(H;{root}), one "
               "point per recorded step (larger points later). <b>Look for</b> points moving "
               "up (learning the label) and, if layers compress, left. The k-NN estimate "
               "is clipped at 0.")
    xs = {float(r["value"]) for r in run.rows if r["metric"] == "mi_input"}  # type: ignore[arg-type]
    if len(xs) == 1:
        caption += (f" Here every site keeps I(H;X) = {xs.pop():.3g} nats at every step (each "
                    "layer is injective on the sample), so the plane collapses to one vertical "
                    "line and only the label axis moves.")
    out = figure(png_base64(fig), caption, "information plane")
    plt.close(fig)
    return "Information plane", out


def saved_analyses(run: Path) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, base64 PNGs, table rows with a header row first) of every ``tmr
    coarse-grain`` (``coarse_grain/<site>_<scheme>/``) and ``tmr bound`` (``bounds/``)
    output saved in the run directory; read as saved, nothing is recomputed."""
    import base64
    import csv

    out: list[tuple[str, list[str], list[list[str]]]] = []
    for d in sorted(p for p in run.glob("coarse_grain/*") if p.is_dir()):
        rows: list[list[str]] = []
        summary = d / "summary.json"
        if summary.is_file():
            info = json.loads(summary.read_text())
            rows = [["key", "value"]] + [[str(k), str(v)] for k, v in info.items()
                                         if not isinstance(v, dict | list)]
        pngs = [base64.b64encode(p.read_bytes()).decode() for p in sorted(d.glob("*.png"))]
        out.append((f"coarse-grain {d.name}", pngs, rows))
    for csv_path in sorted(run.glob("bounds/*.csv")):
        with csv_path.open() as f:
            rows = list(csv.reader(f))
        png = csv_path.with_suffix(".png")
        pngs = [base64.b64encode(png.read_bytes()).decode()] if png.is_file() else []
        out.append((f"bounds {csv_path.stem}", pngs, rows))
    return out


def saved_analyses_section(run: RunData) -> tuple[str, str] | None:
    """Tables and figures saved by ``tmr coarse-grain`` and ``tmr bound``."""
    parts = []
    for title, pngs, rows in saved_analyses(run.run):
        parts.append(f"<h3>{html.escape(title)}</h3>")
        if rows:
            parts.append(table([html.escape(c) for c in rows[0]],
                               [[html.escape(c) for c in r] for r in rows[1:]]))
        parts += [figure(b, f"Saved by the command that wrote <code>{html.escape(title)}"
                            "</code>.", title) for b in pngs]
    return ("Coarse-graining and bounds", "".join(parts)) if parts else None


def tools_section(run: RunData) -> tuple[str, str] | None:
    """Interpretability tools scored against the latents (``tmr evaluate-tools``), one
    block per evaluated site."""
    parts = tool_sections(run.run)
    if not parts:
        return None
    intro = ("<p>Each tool (sparse autoencoders, PCA, NTK modes) is a coarse-graining of one "
             "site whose scale is the number of features kept. Every latent variable (level × "
             "position × value) is matched with the single feature that separates it best "
             "(AUROC); a latent is <em>monosemantic</em> when that AUROC reaches 0.95. "
             "Scores come from <code>tools/&lt;site&gt;/tool_scores.csv</code>.</p>")
    return "Interpretability tools", intro + "".join(
        f"<h3>{html.escape(title)}</h3>{body}" for title, body, _ in parts)


def files_section(run: RunData) -> tuple[str, str] | None:
    """Links to the run's files, so every number above can be traced to its source."""
    r = run.run
    data = run.config.get("data", {}).get("path") or run.config.get("config", {}).get(
        "data_path")
    items = [("config.json", "resolved config, seed, versions, git commit"),
             ("metrics.jsonl", "losses and accuracies at every evaluation"),
             ("probe_scores.csv", "every probe score (the heatmaps)"),
             ("layer_metrics.csv", "every layer metric (the figures and claims)"),
             ("layer_level.png", "selectivity heatmap drawn by the training run"),
             ("summary.md", "this report's tables in markdown")]
    lis = [f"<li>{run.link(r / name)}: {html.escape(what)}</li>" for name, what in items
           if (r / name).exists() or name == "summary.md"]
    if data:
        lis.insert(0, f"<li>{run.link(Path(data))}: the data file</li>")
    return "Files of this run", f"<ul>{''.join(lis)}</ul>"


#: the report's sections in page order (append to add one to every report)
SECTIONS: list[Section] = [claims_section, probes_section, metrics_table_section,
                           metric_figures_section, information_plane_section,
                           saved_analyses_section, tools_section, files_section]


def _generator_params(run: RunData) -> dict[str, Any]:
    """Generator parameters from the data file's stored config (or config.json's data)."""
    path = run.config.get("data", {}).get("path")
    if path and Path(path).is_file():
        try:
            from tmr.io import describe

            stored = describe(path)["attrs"].get("config", {})
            return {k: v for k, v in stored.get("generator", {}).items() if k != "name"}
        except (OSError, ValueError):
            pass
    return {}


def header_facts(run: RunData) -> list[tuple[str, str]]:
    """(label, html) pairs of the page header, from config.json and metrics.jsonl."""
    c, cfg = run.config, run.config.get("config", {})
    esc = html.escape
    facts: list[tuple[str, str]] = []
    m = c.get("resolved_model", {})
    if m:
        bits = [m.get("kind", "?")] + [f"{k.replace('_', ' ')} {m[k]}" for k in
                                        ("n_layers", "width", "filter_size", "embed_dim")
                                        if m.get(k) is not None and k in m]
        bits += [str(m[k]) for k in ("activation",) if m.get(k)]
        if m.get("embedding"):
            bits.append(f"{m['embedding']} embedding")
        facts.append(("model", esc(", ".join(str(b) for b in bits))))
    task = cfg.get("task", {})
    if task:
        facts.append(("task", esc(task.get("kind", "") + (f" (level {task['level']})"
                                                          if task.get("level") else ""))))
    d = c.get("data", {})
    if d:
        split = (f" ({d['n_train']:,} train, {d['n_test']:,} test)"
                 if "n_train" in d and "n_test" in d else "")
        facts.append(("data file", run.link(Path(d.get("path", "")), d.get("path"))
                      + esc(f": {d.get('n_samples', '?'):,} samples{split}"
                            if isinstance(d.get("n_samples"), int) else "")))
        params = _generator_params(run)
        gen = d.get("generator", "")
        facts.append(("generator", esc(gen + (": " + ", ".join(
            f"{k}={v}" for k, v in params.items() if v is not None) if params else ""))))
    if "seed" in c:
        facts.append(("seed", esc(f"{c['seed']} (training)" + (
            f", {d['seed']} (data)" if "seed" in d else ""))))
    o = cfg.get("optim", {})
    if o:
        facts.append(("training", esc(f"{o.get('steps')} steps of {o.get('name')}, batch "
                                      f"{o.get('batch_size')}, lr {o.get('lr')}")))
    if run.final:
        accs = [f"{k.replace('_acc', '')} {run.final[k]:.3f}" for k in ("train_acc", "test_acc")
                if isinstance(run.final.get(k), int | float)]
        if accs:
            facts.append(("final accuracy", esc(", ".join(accs)
                                                + f" (step {run.final.get('step')})")))
    facts.append(("sites", ", ".join(f"<code>{esc(s)}</code>" for s in run.sites)))
    facts.append(("levels", esc(", ".join(run.levels) or "none")))
    if c.get("device"):
        facts.append(("device", esc(str(c["device"]))))
    return facts


def _header(run: RunData) -> str:
    facts = header_facts(run)
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{v}</dd>" for k, v in facts)
    model = run.config.get("resolved_model", {}).get("kind", "")
    task = run.config.get("config", {}).get("task", {}).get("kind", "")
    gen = run.config.get("data", {}).get("generator", "")
    sub = " · ".join(x for x in (f"{model} model" if model else "",
                                 f"trained on the {task}" if task else "",
                                 f"{gen} data" if gen else "") if x)
    return (f"<header class='run'><h1>Run report: {html.escape(run.run.name)}</h1>"
            f"<p class='sub'>{html.escape(sub)}</p><dl class='facts'>{dl}</dl></header>")


def _summary_md(run: RunData) -> str:
    md = [f"# Report: {run.run.name}", "",
          f"{len(run.sites)} sites, levels {run.levels}, steps {run.steps}.", "",
          "## Paper 000 claims (last step)", "",
          "| claim | statement | source | test | values by site | verdict | reason |",
          "|---|---|---|---|---|---|---|"]
    for c in run.claims:
        vals = ", ".join(_fmt(float(v)) for v in c["values"])  # type: ignore[attr-defined]
        md.append(f"| ({c['claim']}) | {c['statement']} | {c['source']} | {c['test']} "
                  f"| {vals} | {c['verdict']} | {c['reason']} |")
    md += ["", f"Trend holds when Spearman(depth) >= {MONOTONE_MIN_RHO} in the claimed "
           f"direction; claim (7) needs a log-linear fit with ratio < 1 and R² >= "
           f"{GEOMETRIC_MIN_R2}. Values are raw estimates (k-NN MI may be below 0).", ""]
    for title, _, rows in saved_analyses(run.run):
        if rows:
            md += [f"## {title}", "", "| " + " | ".join(rows[0]) + " |",
                   "|" + "---|" * len(rows[0]),
                   *("| " + " | ".join(r) + " |" for r in rows[1:]), ""]
    for title, _, lines in tool_sections(run.run):
        md += [f"## Interpretability tools {title}", "", *lines, ""]
    return "\n".join(md)


def load_run(run_dir: str | Path, dest: str | Path | None = None) -> RunData:
    """Read the saved tables of ``run_dir`` into a :class:`RunData`."""
    from tmr.plots import read_scores

    run = Path(run_dir)
    csv_path = run / "layer_metrics.csv"
    if not csv_path.exists():
        raise FileNotFoundError(f"{csv_path} not found: record layer metrics first "
                                "(tmr.metrics.table.write_table)")
    rows = read_table(csv_path)
    probes = read_scores(run / "probe_scores.csv") if (run / "probe_scores.csv").exists() else []
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() \
        else {}
    final: dict[str, Any] = {}
    if (run / "metrics.jsonl").exists():
        for line in (run / "metrics.jsonl").read_text().splitlines():
            if line.strip():
                final = json.loads(line)
    return RunData(run=run, dest=Path(dest) if dest is not None else run, rows=rows,
                   probes=probes, config=config, final=final, claims=claims_from_rows(rows))


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, *,
                 extra_sections: Sequence[Section] = ()) -> tuple[Path, Path]:
    """Write ``report.html`` and ``summary.md`` for ``run_dir`` (into ``out_dir``,
    default the run directory); return their paths. ``extra_sections`` come after
    :data:`SECTIONS`."""
    run = load_run(run_dir, out_dir)
    run.dest.mkdir(parents=True, exist_ok=True)
    summary = run.dest / "summary.md"
    with atomic_path(summary) as tmp:
        tmp.write_text(_summary_md(run))
    sections = [s for s in (f(run) for f in [*SECTIONS, *extra_sections]) if s is not None]
    commit = str(run.config.get("git_commit") or "")[:10]
    footer = "Written by <code>tmr report</code>" + (f" · commit <code>{commit}</code>"
                                                     if commit else "")
    out = run.dest / "report.html"
    with atomic_path(out) as tmp:
        tmp.write_text(page(f"TMR report: {run.run.name}", _header(run), sections, footer))
    return out, summary


if __name__ == "__main__":  # pragma: no cover
    for p in write_report(sys.argv[1]):
        print(p)
