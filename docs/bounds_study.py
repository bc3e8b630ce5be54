"""Study: on an MLP and the hierarchical CNN trained on the RHM root class,
(a) how tight the certified (CROWN/Lipschitz) bound is against PGD as ε grows, and (b) whether
the PCA tail of each layer is certifiably irrelevant for the root class at the size of its
natural fluctuations.

Runs (configs/rhm.toml data; ``make demo`` gives the CNN):

    tmr generate configs/rhm.toml --out data/demo_rhm.h5
    tmr train-and-probe configs/train_rhm_cnn.toml --data data/demo_rhm.h5 --out runs/demo_cnn
    tmr train-and-probe configs/train_rhm_mlp.toml --data data/demo_rhm.h5 --out runs/study_mlp
    PYTHONPATH=. python docs/bounds_study.py [--cnn runs/demo_cnn] [--mlp runs/study_mlp]

Uses only the library behind ``tmr bound`` (``tmr.bounds.run.bound_run``, one torch thread;
a few minutes on CPU). Definitions (background.md §5, tmr/bounds/core.py):
- D(ε) = max_{‖z‖₂≤ε} |g(h + Vz) − g(h)|, g = root-class logit margin l_y − max_{j≠y} l_j;
  certified = min(CROWN, Lipschitz) upper bound, empirical = PGD lower bound;
  tightness = mean certified / mean PGD over inputs (≥ 1; 1 = tight);
- V_tail = PCA directions beyond the top `keep` (PCA of the site's activations on test inputs),
  V_rel = the top `keep`;
- natural scale ε_nat = median over test inputs of ‖V_tailᵀ(h − h̄)‖₂ (bounds.natural_scale);
- "certifiably cannot flip": certified D(ε) < g(h) for that input (so g stays > 0 in the
  ball); reported as a fraction of all bounded inputs, next to the accuracy (fraction with
  g > 0), its ceiling.
Writes docs/img/bounds_study_{tightness,natural}.png and prints markdown tables.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import torch

from tmr import bounds as B
from tmr.bounds.run import COLUMNS, bound_run, site_activations

FACTORS = (0.1, 0.3, 1.0, 3.0, 10.0)  # ε / ε_nat ladder; 1 is the natural-scale point
NATURAL = FACTORS.index(1.0)


def ablation(run_dir: Path, site: str, keep: int, n: int = 2000) -> dict[str, float]:
    """The natural perturbation itself: replace an input's projection onto a subspace by the
    mean's, h → h − V Vᵀ(h − h̄) (its norm is that input's own ‖Vᵀ(h − h̄)‖), on the same
    2,000 test inputs the PCA uses; fraction of correctly classified inputs whose prediction
    flips, for the tail and for the top-k subspace."""
    import copy

    model, h, y = site_activations(run_dir, site, n)
    acts = h.reshape(len(h), -1)  # (n, d)
    v_rel, v_tail = (torch.as_tensor(v) for v in B.pca_split(acts.numpy(), keep))
    tail = copy.deepcopy(B.resolve_tail(model, site)).double()
    obs = B.margin(y)
    centred = acts - acts.mean(0)
    out = {}
    with torch.no_grad():
        g0 = obs.value(tail(h))  # (n,)
        ok = g0 > 0
        for name, v in (("tail", v_tail), ("topk", v_rel)):
            g = obs.value(tail((acts - centred @ v @ v.T).reshape(h.shape)))
            out[f"ablate_{name}_flip"] = float(((g <= 0) & ok).sum() / ok.sum())
            out[f"ablate_{name}_dmargin"] = float((g - g0).abs().mean())
    return out


def study_model(name: str, run_dir: Path, keep: int, n_inputs: int, steps: int
                ) -> list[dict]:
    from tmr.train import load_run

    model, _, _ = load_run(run_dir)
    sites = [s for s in model.sites if s.endswith(".post")]
    rows: list[dict] = []
    for site in sites:
        t0 = time.perf_counter()
        eps = [f"natural*{f:g}" for f in FACTORS]
        site_rows, sep = bound_run(run_dir, site, keep=keep, eps=eps, n_inputs=n_inputs,
                                   steps=steps)
        acc = float((sep.tail.g0 > 0).mean())
        abl = ablation(run_dir, site, keep)
        for i, (f, r) in enumerate(zip(FACTORS, site_rows, strict=True)):
            rel_ratio = (r["relevant_certified"] / r["relevant_empirical"]
                         if r["relevant_empirical"] > 0 else math.nan)
            rows.append({"model": name, "factor": f, "accuracy": acc,
                         "margin_mean": float(sep.tail.g0.mean()),
                         "no_flip_pgd": float((sep.tail.empirical[i] < sep.tail.g0).mean()),
                         "relevant_no_flip_pgd": float(
                             (sep.relevant.empirical[i] < sep.relevant.g0).mean()),
                         "relevant_ratio": rel_ratio, **abl, **r})
        print(f"  {name} {site}: {time.perf_counter() - t0:.1f} s", flush=True)
    return rows


def plots(rows: list[dict], out: Path) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.6), squeeze=False)
    for ax, m in zip(axes[0], models, strict=True):
        sites = list(dict.fromkeys(r["site"] for r in rows if r["model"] == m))
        for i, s in enumerate(sites):
            rs = [r for r in rows if r["model"] == m and r["site"] == s]
            c = f"C{i}"
            ax.plot([r["factor"] for r in rs], [r["ratio"] for r in rs], "o-", color=c,
                    label=f"{s} tail")
            ax.plot([r["factor"] for r in rs], [r["relevant_ratio"] for r in rs], "s--",
                    color=c, alpha=0.6, label=f"{s} top-k")
        ax.axhline(1, color="k", lw=0.6)
        ax.set(xscale="log", yscale="log", xlabel="ε / ε_nat (median tail fluctuation)",
               ylabel="certified / PGD (mean over inputs)", title=m)
        ax.legend(fontsize=6)
    fig.tight_layout()
    tight = out / "bounds_study_tightness.png"
    fig.savefig(tight, dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.6), squeeze=False)
    for ax, m in zip(axes[0], models, strict=True):
        rs = [r for r in rows if r["model"] == m and r["factor"] == 1.0]
        x = range(len(rs))
        ax.bar([i - 0.2 for i in x], [r["no_flip_certified"] for r in rs], 0.4,
               label="tail (PCA beyond top k)")
        ax.bar([i + 0.2 for i in x], [r["relevant_no_flip_certified"] for r in rs], 0.4,
               label="top-k, same ε")
        ax.plot(list(x), [r["accuracy"] for r in rs], "k_", ms=22, mew=2,
                label="accuracy (ceiling)")
        ax.plot([i - 0.2 for i in x], [r["no_flip_pgd"] for r in rs], "v", color="C0",
                mec="k", label="tail: PGD did not flip (upper limit)")
        ax.plot([i + 0.2 for i in x], [r["relevant_no_flip_pgd"] for r in rs], "v", color="C1",
                mec="k", label="top-k: PGD did not flip")
        ax.set_xticks(list(x), [r["site"].removeprefix("layers.") for r in rs])
        ax.set(ylim=(0, 1.05), ylabel="fraction certified not to flip", title=f"{m}, ε = ε_nat")
        ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    nat = out / "bounds_study_natural.png"
    fig.savefig(nat, dpi=120)
    plt.close(fig)
    return tight, nat


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--cnn", type=Path, default=Path("runs/demo_cnn"))
    ap.add_argument("--mlp", type=Path, default=Path("runs/study_mlp"))
    ap.add_argument("--keep", type=int, default=8)
    ap.add_argument("--n-inputs", type=int, default=100)
    ap.add_argument("--steps", type=int, default=60, help="PGD steps per restart")
    ap.add_argument("--img", type=Path, default=Path("docs/img"))
    ap.add_argument("--csv", type=Path, default=Path("runs/bounds_study.csv"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    rows: list[dict] = []
    for name, run_dir in (("MLP", args.mlp), ("CNN", args.cnn)):
        rows += study_model(name, run_dir, args.keep, args.n_inputs, args.steps)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as f:
        cols = ["model", "factor", "accuracy", "margin_mean", "relevant_ratio", "no_flip_pgd",
                "relevant_no_flip_pgd",
                "ablate_tail_flip", "ablate_tail_dmargin", "ablate_topk_flip",
                "ablate_topk_dmargin", *COLUMNS]
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows([{k: r[k] for k in cols} for r in rows])
    args.img.mkdir(parents=True, exist_ok=True)
    tight, nat = plots(rows, args.img)

    print("\n(a) certified / PGD (tail; top-k in brackets) at ε / ε_nat = "
          + ", ".join(f"{f:g}" for f in FACTORS))
    print("| model | site | ε_nat | " + " | ".join(f"×{f:g}" for f in FACTORS) + " |")
    print("|---|---|---|" + "---|" * len(FACTORS))
    keys = list(dict.fromkeys((r["model"], r["site"]) for r in rows))
    for m, s in keys:
        rs = [r for r in rows if (r["model"], r["site"]) == (m, s)]
        cells = [f"{r['ratio']:.2f} ({r['relevant_ratio']:.2f})" for r in rs]
        print(f"| {m} | {s} | {rs[0]['tail_natural_scale']:.3g} | " + " | ".join(cells) + " |")
    at_nat = {(m, s): next(r for r in rows if (r["model"], r["site"], r["factor"]) == (m, s, 1.0))
              for m, s in keys}
    print("\n(b) at ε = ε_nat")
    print("| model | site | tail var. frac. | mean margin | tail cert. | tail PGD | "
          "top-k cert. | top-k PGD | no flip: tail (PGD) | no flip: top-k (PGD) | accuracy |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (m, s), r in at_nat.items():
        print(f"| {m} | {s} | {r['tail_variance_fraction']:.2f} | {r['margin_mean']:.3g} | "
              f"{r['certified']:.3g} | {r['empirical']:.3g} | {r['relevant_certified']:.3g} | "
              f"{r['relevant_empirical']:.3g} | {r['no_flip_certified']:.2f} "
              f"({r['no_flip_pgd']:.2f}) | {r['relevant_no_flip_certified']:.2f} "
              f"({r['relevant_no_flip_pgd']:.2f}) | {r['accuracy']:.2f} |")
    print("\n(c) natural ablation h → h − VVᵀ(h − h̄) on 2,000 test inputs")
    print("| model | site | tail: flipped | tail: mean abs Δmargin | top-k: flipped | "
          "top-k: mean abs Δmargin |")
    print("|---|---|---|---|---|---|")
    for (m, s), r in at_nat.items():
        print(f"| {m} | {s} | {r['ablate_tail_flip']:.3f} | {r['ablate_tail_dmargin']:.3g} | "
              f"{r['ablate_topk_flip']:.3f} | {r['ablate_topk_dmargin']:.3g} |")
    print(f"\nwrote {args.csv}, {tight}, {nat}")


if __name__ == "__main__":
    main()
