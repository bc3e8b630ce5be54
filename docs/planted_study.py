"""Study: what a top-k PCA cutoff and the certified tail bound say about planted failure modes.

Runs on the hierarchical CNN trained on configs/rhm_planted.toml (all three planted modes):

    tmr generate configs/rhm_planted.toml --out data/rhm_planted.h5
    tmr train-and-probe configs/train_rhm_planted_cnn.toml --data data/rhm_planted.h5 \\
        --out runs/planted --threads 1
    PYTHONPATH=. python docs/planted_study.py runs/planted [--n 2000] [--n-bound 100]

For every site and kept-mode count k it prints, per planted variable (tmr.planted.assess):
the verdict (kept / discarded / absent), decodability from the whole site and from the top-k
PCA scores (0 = chance, 1 = perfect), the tail displacement ε_v, the mean certified margin
bound at ε_v and the share of correctly predicted inputs where it reaches the margin.

The displacement ε_v comes from interventions on the data (tmr.planted.counterfactual_inputs:
the dangerous mark toggled, the misaligned synonym moved to the next rule of the same parent,
every nuisance case bit flipped): ε_v = median ‖V_tailᵀΔh‖; the table also gives the median
kept part ‖V_kᵀΔh‖ and flip_rate, the share of inputs whose prediction the intervention
changes (the ground truth of "does the variable decide the observable").
Uses one torch thread; about a minute on two busy CPU cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from tmr import io, planted
from tmr.bounds.run import _data_path, site_activations
from tmr.rg.spectral import PCAScheme

SITES = ("embed", "layers.0.post", "layers.1.post", "layers.2.post")
KS = (4, 8, 16, 32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-bound", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = json.loads((args.run / "config.json").read_text())
    path = _data_path(args.run, Path(cfg["config"]["data_path"]))
    test, _ = io.read(path, "test")
    rows = []
    for site in SITES:
        model, h, y = site_activations(args.run, site, args.n)
        n = len(y)
        sample = test[:n]
        targets = planted.planted_targets(sample.aux)
        targets["label"] = sample.levels[0][:, 0].astype(np.int64)
        logits, _ = planted.site_activations(model, site, sample.x)
        pred = logits.argmax(-1)
        acts = h.reshape(n, -1).numpy()
        counter, flips = {}, {}
        for name, xc in planted.counterfactual_inputs(sample).items():
            out, counter[name] = planted.site_activations(model, site, xc)
            flips[name] = float(np.mean(out.argmax(-1) != pred))
        pca = PCAScheme()
        for k in KS:
            if k >= acts.shape[1]:
                continue
            cg = pca(acts, k)
            for v in planted.assess(h.numpy(), cg, targets, model=model, site=site, labels=y,
                                    counterfactual=counter, n_bound=args.n_bound):
                row = {"site": site, "k": k, **v.as_row(), "flip_rate": flips.get(v.name)}
                if v.name in counter:
                    dh = counter[v.name].reshape(n, -1) - acts
                    row["dh_kept"] = float(np.median(np.linalg.norm(dh @ cg.modes, axis=1)))
                rows.append(row)
        print(f"{site}: accuracy {np.mean(pred == sample.levels[0][:, 0]):.3f} on {n} test inputs")
    cols = ["site", "k", "name", "verdict", "full", "kept", "tail_displacement", "certified",
            "margin", "revealed_fraction", "flip_rate", "dh_kept"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = []
        for c in cols:
            val = r.get(c)
            cells.append("" if val is None else f"{val:.3g}" if isinstance(val, float)
                         else str(val))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
