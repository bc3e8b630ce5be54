"""Analyse the RHM sample-complexity sweeps: collapse figure, fitted P*, MLP comparison
and synonymic sensitivity against P.

    python studies/rhm_sample_complexity/analyse.py sweeps/rhm_pc_cnn \
        --mlp sweeps/rhm_pc_mlp --out sweeps/rhm_pc_analysis

Reads each sweep's ``collected_metrics.csv`` (``tmr collect SWEEP_DIR`` writes it) and
the runs' weights and data files; writes into ``--out``:

    p_star.csv          per setting (net, v, n_c, m, L): n_c m^L, fitted P*, P*/(n_c m^L)
    curves.csv          mean and std over seeds of the test error at each P
    sensitivity.csv     S_(k,l) per run, layer k and exchanged level l
    summary.md          the P* table in markdown
    collapse.png        test error against P and against P/(n_c m^L)
    sensitivity.png     per layer, sensitivity to exchanging the input-level synonyms
                        against P/(n_c m^L)

P* is where the seed-averaged test error first falls to half the chance error,
(1 - 1/n_c)/2, interpolated in log P (tmr.sample_complexity.crossing).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tmr.sample_complexity import crossing, curves, read_rows, run_sensitivities, run_world_params

SETTING = ("net", "vocab_size", "n_classes", "n_synonyms", "tuple_size", "n_levels")


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def load(sweep: Path, net: str, with_sensitivity: bool) -> tuple[list[dict], list[dict]]:
    """Final-metric rows annotated with the world's parameters, and sensitivity rows."""
    rows, sens = [], []
    for r in read_rows(sweep / "collected_metrics.csv"):
        run_dir = sweep / "runs" / r["run"]
        world = run_world_params(run_dir)
        row = {"net": net, **{k: world[k] for k in SETTING[1:]}, "run": r["run"],
               "n_train": int(r["n_train"]), "n_test": int(r["n_test"]),
               "test_error": float(r["test_error"])}
        rows.append(row)
        if with_sensitivity:
            for s in run_sensitivities(run_dir, rng=0):
                sens.append({**{k: row[k] for k in (*SETTING, "run", "n_train")}, **s})
    return rows, sens


def scale(row: dict[str, Any]) -> int:
    """n_c m^L of a setting."""
    return int(row["n_classes"]) * int(row["n_synonyms"]) ** int(row["n_levels"])


def label(key: tuple[str, ...]) -> str:
    net, _v, _n, m, _s, L = key
    return f"{net.upper()} m={m} L={L}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cnn", type=Path, help="the CNN sweep directory")
    ap.add_argument("--mlp", type=Path, default=None, help="the MLP sweep directory")
    ap.add_argument("--out", type=Path, default=None,
                    help="output directory (default: CNN/analysis)")
    ap.add_argument("--no-sensitivity", action="store_true",
                    help="skip the synonymic sensitivities (test error only)")
    args = ap.parse_args(argv)
    out = args.out or args.cnn / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    try:
        rows, sens = load(args.cnn, "cnn", not args.no_sensitivity)
        if args.mlp is not None:
            r2, s2 = load(args.mlp, "mlp", not args.no_sensitivity)
            rows, sens = rows + r2, sens + s2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cv = curves(rows, SETTING)
    first = {tuple(str(r[k]) for k in SETTING): r for r in rows}
    table, curve_rows = [], []
    for key, c in sorted(cv.items()):
        r = first[key]
        chance = 1.0 - 1.0 / int(r["n_classes"])
        cr = crossing(c.p, c.mean, chance / 2)
        table.append({**dict(zip(SETTING, key, strict=True)), "scale": scale(r),
                      "p_min": int(c.p[0]), "p_max": int(c.p[-1]), "seeds": int(c.count.min()),
                      "chance_error": round(chance, 4), "p_star": cr.p_star,
                      "ratio": cr.p_star / scale(r), "status": cr.status})
        for p, mu, sd, k in zip(c.p, c.mean, c.std, c.count, strict=True):
            curve_rows.append({**dict(zip(SETTING, key, strict=True)), "n_train": int(p),
                               "p_over_scale": p / scale(r), "mean_test_error": mu,
                               "std_test_error": sd, "runs": int(k)})
    _write_csv(table, out / "p_star.csv")
    _write_csv(curve_rows, out / "curves.csv")
    if sens:
        _write_csv(sens, out / "sensitivity.csv")
    (out / "summary.md").write_text(summary_md(table))
    plot_collapse(cv, first, out / "collapse.png")
    if sens:
        plot_sensitivity(sens, out / "sensitivity.png")
    print(summary_md(table))
    print(f"wrote {out}/p_star.csv, curves.csv, summary.md, collapse.png"
          + (", sensitivity.csv, sensitivity.png" if sens else ""))
    return 0


def scaling_fit(table: list[dict[str, Any]], net: str = "cnn") -> tuple[float, float] | None:
    """Least-squares ``log P* = log c + b log(n_c m^L)`` over the settings of ``net``
    whose curve crossed: ``(b, c)`` (the claim P* ~ n_c m^L is b = 1), or None with
    fewer than two such settings."""
    pts = [(t["scale"], t["p_star"]) for t in table
           if t["net"] == net and t["status"] == "crossed"]
    if len({x for x, _ in pts}) < 2:
        return None
    b, a = np.polyfit(np.log([x for x, _ in pts]), np.log([y for _, y in pts]), 1)
    return float(b), float(np.exp(a))


def summary_md(table: list[dict[str, Any]]) -> str:
    lines = ["| net | v = n_c | m | L | n_c m^L | P range | runs per P | P* | P*/(n_c m^L) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in table:
        if t["status"] == "crossed":
            ps, ratio = f"{t['p_star']:.0f}", f"{t['ratio']:.2f}"
        elif t["status"] == "above_range":
            ps, ratio = f"> {t['p_max']}", f"> {t['p_max'] / t['scale']:.1f}"
        else:
            ps, ratio = f"<= {t['p_min']}", f"<= {t['p_min'] / t['scale']:.2f}"
        lines.append(f"| {t['net']} | {t['n_classes']} | {t['n_synonyms']} | {t['n_levels']} "
                     f"| {t['scale']} | {t['p_min']}-{t['p_max']} | {t['seeds']} | {ps} "
                     f"| {ratio} |")
    fit = scaling_fit(table)
    if fit is not None:
        ratios = [t["ratio"] for t in table if t["net"] == "cnn" and t["status"] == "crossed"]
        lines += ["", f"CNN: P*/(n_c m^L) from {min(ratios):.2f} to {max(ratios):.2f}; "
                  f"fit P* = {fit[1]:.2f} (n_c m^L)^{fit[0]:.2f} over {len(ratios)} settings."]
    return "\n".join(lines) + "\n"


def plot_collapse(cv: dict, first: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    chance = None
    for key, c in sorted(cv.items()):
        r = first[key]
        chance = 1.0 - 1.0 / int(r["n_classes"])
        style = "--" if key[0] == "mlp" else "-"
        for ax, x in ((axes[0], c.p), (axes[1], c.p / scale(r))):
            ax.errorbar(x, c.mean, yerr=c.std, ls=style, marker="o", ms=4, capsize=2,
                        label=label(key))
    for ax, xl in ((axes[0], "training samples P"), (axes[1], "P / (n_c m^L)")):
        ax.set_xscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("test error")
        if chance is not None:
            ax.axhline(chance, color="grey", lw=0.8, ls=":")
            ax.axhline(chance / 2, color="grey", lw=0.8, ls="--")
    axes[1].axvline(1.0, color="k", lw=0.5)
    worlds = sorted({(k[1], k[2], k[4]) for k in cv})
    axes[0].set_title("RHM, " + "; ".join(f"v={v}, n_c={n}, s={s}" for v, n, s in worlds)
                      + " (mean ± std over runs)", fontsize=10)
    axes[1].set_title("collapse; dotted: chance, dashed: half chance")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def plot_sensitivity(sens: list[dict[str, Any]], png: Path) -> None:
    """Sensitivity of each layer to exchanging the input-level synonyms
    (the paper's ℓ = 1), mean over seeds, against P/(n_c m^L), one panel per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data: dict[tuple, dict[int, dict[float, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for s in sens:
        if int(s["level_from_input"]) != 1:
            continue
        key = tuple(str(s[k]) for k in SETTING)
        data[key][int(s["layer"])][s["n_train"] / scale(s)].append(float(s["value"]))
    keys = sorted(data)
    ncol = min(3, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax, key in zip(axes.ravel(), keys, strict=False):
        for layer, by_x in sorted(data[key].items()):
            xs = np.array(sorted(by_x))
            ax.plot(xs, [np.mean(by_x[x]) for x in xs], marker="o", ms=3,
                    label=f"layer {layer + 1}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axvline(1.0, color="k", lw=0.5)
        ax.set_title(label(key), fontsize=9)
        ax.set_xlabel("P / (n_c m^L)")
        ax.set_ylabel("S (input-level synonyms)")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
