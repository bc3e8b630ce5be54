"""Study: which spectral modes of each layer of the hierarchical CNN
trained on the RHM carry which latent level, and the cutoff k at which each level's probe
selectivity drops.

Run after ``make demo`` (runs/demo_cnn: configs/rhm.toml + configs/train_rhm_cnn.toml):

    PYTHONPATH=. python docs/rg_study.py [RUN_DIR] [--scheme pca] [--n-samples 2048]

Uses only the library (``tmr.rg.report.coarse_grain_run``, the same call as
``tmr coarse-grain``). For every layer it writes RUN_DIR/coarse_grain/<site>_<scheme>/
and, from those files, docs/img/rg_study_<scheme>_{faithfulness,modes}.png and a markdown
table on stdout. Definitions:
- alignment of mode j with level ℓ: fraction of the centred one-hot labels' energy on the
  mode's scores, Σ_c (u_jᵀ y_c)² / ‖Y‖²_F (``tmr.rg.spectrum.alignment_relevance``);
- selectivity: held-out ridge-probe accuracy minus the accuracy on a control task (one
  random label per distinct input), on the site projected onto its top-k modes
  P_k(H) = μ + (H − μ) V_k V_kᵀ; levels with several positions are probed at position 0;
- k_drop(ℓ): the smallest k on the ladder whose selectivity is still ≥ 90 % of the
  full-rank value (below it the level's information is being cut away).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from tmr.rg.report import coarse_grain_run

SITES = ("layers.0.post", "layers.1.post", "layers.2.post")
LADDER = (0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256)
KEEP = 0.9  # fraction of the full-rank selectivity that defines k_drop
MIN_SELECTIVITY = 0.05  # below this at full rank the level is "not carried"
N_MODES_SHOWN = 24


def _read(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def k_drop(ks: np.ndarray, sel: np.ndarray) -> int | None:
    """Smallest k whose selectivity is ≥ KEEP × the full-rank one (ks decreasing)."""
    full = sel[0]
    if full < MIN_SELECTIVITY:
        return None
    ok = sel >= KEEP * full
    # the first k (from the top) where it fails, then the k just above it
    bad = np.flatnonzero(~ok)
    return int(ks[bad[0] - 1]) if bad.size else int(ks[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", default="runs/demo_cnn")
    ap.add_argument("--scheme", default="pca")
    ap.add_argument("--n-samples", type=int, default=2048)
    ap.add_argument("--budget", type=float, default=0.05)
    ap.add_argument("--img", default="docs/img")
    args = ap.parse_args()
    run = Path(args.run_dir)
    results = {}
    for site in SITES:
        out = run / "coarse_grain" / f"{site}_{args.scheme}"
        rep = coarse_grain_run(run, site=site, scheme=args.scheme, budget=args.budget,
                               n_samples=args.n_samples, out_dir=out, ks=LADDER)
        results[site] = (rep, _read(out / "spectrum.csv"), _read(out / "faithfulness.csv"))
    levels = [c.split(":", 1)[1] for c in results[SITES[0]][2][0] if c.startswith("probe:")]
    _plot(results, levels, args.scheme, Path(args.img), args.budget)
    _table(results, levels, args.budget)


def _plot(results: dict, levels: list[str], scheme: str, img: Path, budget: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(levels)))
    fig, axes = plt.subplots(1, len(SITES), figsize=(4.2 * len(SITES), 3.6), sharey=True)
    for ax, site in zip(axes, SITES, strict=True):
        rep, _, faith = results[site]
        ks = np.array([float(r["k"]) for r in faith])
        for lev, col in zip(levels, colours, strict=True):
            ax.plot(ks, [float(r[f"probe:{lev}"]) for r in faith], "o-", ms=3, color=col,
                    label=f"{lev} selectivity")
        ax.plot(ks, [float(r["accuracy"]) for r in faith], "k--", lw=1, label="task accuracy")
        k_site = rep.summary["k_site"]
        ax.axvline(max(k_site, 1), color="grey", lw=0.8, ls=":")
        ax.text(max(k_site, 1), 1.02, f"k={rep.k} ({budget:g} budget)", fontsize=7,
                ha="center")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(0, ks.max() * 1.1)
        ax.set_xlabel(f"kept {scheme} modes k (of {rep.summary['n_site_modes']})")
        ax.set_title(site, fontsize=9)
        ax.set_ylim(-0.05, 1.08)
    axes[0].set_ylabel("probe selectivity / accuracy")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=len(labels))
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(img / f"rg_study_{scheme}_faithfulness.png", dpi=120)
    plt.close(fig)
    fig, axes = plt.subplots(len(SITES), 1, figsize=(7.5, 1.1 + 0.45 * len(levels) * len(SITES)))
    for ax, site in zip(axes, SITES, strict=True):
        _, spec, _ = results[site]
        m = min(N_MODES_SHOWN, len(spec))
        mat = np.array([[float(spec[j][f"align:{lev}"]) for j in range(m)] for lev in levels])
        im = ax.imshow(mat, aspect="auto", cmap="magma", vmin=0,
                       vmax=max(float(mat.max()), 1e-9))
        ax.set_yticks(range(len(levels)), levels, fontsize=7)
        ax.set_xticks(range(0, m, 2), [str(j + 1) for j in range(0, m, 2)], fontsize=7)
        ax.set_title(f"{site}: alignment of mode j with each level", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    axes[-1].set_xlabel(f"{scheme} mode j (eigenvalue order)")
    fig.tight_layout()
    fig.savefig(img / f"rg_study_{scheme}_modes.png", dpi=120)
    plt.close(fig)


def _table(results: dict, levels: list[str], budget: float) -> None:
    head = ["site", "d", "k (budget)", "acc full", "acc @k"]
    for lev in levels:
        head += [f"{lev} sel", f"{lev} k_drop", f"{lev} top modes"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for site in SITES:
        rep, spec, faith = results[site]
        ks = np.array([int(float(r["k"])) for r in faith])
        acc = {int(float(r["k"])): float(r["accuracy"]) for r in faith}
        k_site = rep.summary["k_site"]  # kernel cutoffs can exceed the site's modes
        row = [site, str(rep.summary["d"]), str(rep.k), f"{acc[int(ks[0])]:.3f}",
               f"{acc[k_site]:.3f}"]
        for lev in levels:
            sel = np.array([float(r[f"probe:{lev}"]) for r in faith])
            kd = k_drop(ks, sel)
            align = np.array([float(r[f"align:{lev}"]) for r in spec])
            top = np.argsort(-align)[:3] + 1
            row += [f"{sel[0]:.3f}", "–" if kd is None else str(kd),
                    ",".join(str(t) for t in top)]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
