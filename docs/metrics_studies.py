"""Figures of the metric example studies, drawn from saved run tables only.

Run the studies first (commands in docs/studies.md, "Layer metrics on the RHM"), then

    PYTHONPATH=$PWD python docs/metrics_studies.py

writes docs/img/metrics_claims_cnn_mlp.png (study a) and docs/img/metrics_grokking.png
(study b; metrics_grokking_4k.png for the 4096-sample variant), and prints the
paper-000 claims of runs/study_cnn and runs/study_mlp.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tmr.metrics.table import read_table
from tmr.report import claims_from_rows

RUNS = Path("runs")
IMG = Path("docs/img")
# (metric, level, y label, log scale): the quantities of paper-000 claims (3)-(7)
PANELS = (("effective_rank", "", "effective rank", False),
          ("twonn", "", "TwoNN dimension", False),
          ("mi_input", "", "I(H;X) (nats)", False),
          ("knn_mi", "root", "k-NN I(H;root) (nats)", False),
          ("separation", "root", "He & Su D (root)", True))


def _final(rows: list[dict[str, object]], metric: str, level: str) -> dict[str, float]:
    last = max(int(r["step"]) for r in rows)  # type: ignore[call-overload]
    return {str(r["site"]): float(r["value"]) for r in rows  # type: ignore[arg-type]
            if r["metric"] == metric and r["level"] == level and r["step"] == last}


def study_a() -> None:
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.2 * len(PANELS), 3.4))
    ticks: list[str] = []  # site names of the deeper model, input first
    for name in ("cnn", "mlp"):
        run = RUNS / f"study_{name}"
        rows = read_table(run / "layer_metrics.csv")
        acc = [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())][-1]
        print(f"\n{name}: final test accuracy {acc['test_acc']:.3f}")
        for c in claims_from_rows(rows):
            vals = ", ".join(f"{v:.3g}" for v in c["values"])  # type: ignore[attr-defined]
            extra = f" ratio {c['ratio']:.3g} R2 {c['r2']:.2f}" if "ratio" in c else ""
            print(f"  ({c['claim']}) {c['statement']}: {'yes' if c['holds'] else 'no'} "
                  f"(Spearman {c['spearman']:.2f}{extra}) [{vals}]")
        for ax, (metric, level, label, log) in zip(axes, PANELS, strict=True):
            s = _final(rows, metric, level)
            ticks = max(ticks, list(s), key=len)
            ax.plot(range(len(s)), list(s.values()), "o-", label=name)
            ax.set(title=label, yscale="log" if log else "linear")
    for ax in axes:
        ax.set_xticks(range(len(ticks)), ticks, rotation=35, ha="right", fontsize=7)
        ax.set_xlabel("site (input → output)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(IMG / "metrics_claims_cnn_mlp.png", dpi=90)


def study_b(name: str = "study_grok", png: str = "metrics_grokking.png") -> None:
    run = RUNS / name
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    log = [m for m in log if m["train_acc"] is not None]
    rows = read_table(run / "layer_metrics.csv")
    sites = list(dict.fromkeys(str(r["site"]) for r in rows))
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(13, 3.4))
    steps = [m["step"] for m in log]
    a1.plot(steps, [m["train_acc"] for m in log], label="train")
    a1.plot(steps, [m["test_acc"] for m in log], label="test")
    a1.plot(steps, [m["train_acc"] - m["test_acc"] for m in log], "k--", label="gap")
    a1.set(xscale="log", xlabel="step", title="accuracy (root class)")
    a1.legend()
    for ax, metric in ((a2, "nc1"), (a3, "rnc1")):
        for site in sites[1:]:
            pts = sorted((int(r["step"]), float(r["value"]))  # type: ignore[call-overload,arg-type]
                         for r in rows if r["metric"] == metric and r["level"] == "root"
                         and r["site"] == site)
            ax.plot(*zip(*pts, strict=True), "o-", label=site)
        ax.set(xscale="log", yscale="log", xlabel="step", title=f"{metric.upper()} (root), "
               "held-out rows")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(IMG / png, dpi=90)


if __name__ == "__main__":
    IMG.mkdir(parents=True, exist_ok=True)
    if (RUNS / "study_cnn/layer_metrics.csv").exists():
        study_a()
    if (RUNS / "study_grok/layer_metrics.csv").exists():
        study_b()
    if (RUNS / "study_grok4k/layer_metrics.csv").exists():  # 4096 training samples
        study_b("study_grok4k", "metrics_grokking_4k.png")
