"""Study (c): a residual MLP's effective rank across depth as RHM synonyms m vary.

For each m, generate an RHM (v = n = 8, s = 2, L = 3, 8192 samples), train a residual
MLP (6 layers of width 128) on the root class with ``tmr.train.run`` and record the
effective rank exp(H(σ/Σσ)) of every layer (Roy & Vetterli 2007) on held-out rows at
the final step (``layer_metrics.csv``); paper 004 reads rank collapse with depth as an
order parameter. Writes docs/img/metrics_rank_vs_synonyms.png.

    PYTHONPATH=$PWD python docs/metrics_rank_vs_synonyms.py   # a few minutes, 1 thread
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from tmr import io
from tmr.config import data_config_from_dict, from_dict
from tmr.metrics.table import read_table
from tmr.train import TrainConfig, run

SYNONYMS = (2, 4, 8)  # m <= v^(s-1) = 8 for v = 8, s = 2
OUT = Path("runs/study_rank")


def main() -> None:
    torch.set_num_threads(1)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for m in SYNONYMS:
        data = OUT / f"rhm_m{m}.h5"
        OUT.mkdir(parents=True, exist_ok=True)
        if not data.exists():
            io.write_dataset(data, data_config_from_dict({
                "seed": 0, "n_samples": 8192, "splits": {"test_fraction": 0.25},
                "generator": {"name": "rhm", "vocab_size": 8, "n_classes": 8,
                              "n_synonyms": m, "tuple_size": 2, "n_levels": 3}}))
        cfg = from_dict(TrainConfig, {
            "seed": 0, "device": "cpu", "data_path": str(data),
            "model": {"kind": "mlp", "width": 128, "n_layers": 6, "residual": True},
            "optim": {"lr": 1e-3, "steps": 1500, "eval_every": 250},
            "probe": {"sites": ["layers.*.post"], "levels": ["root"], "max_samples": 1024,
                      "control": False, "group_split": False},
            "metrics": {"metrics": ["effective_rank", "participation_ratio"],
                        "steps": "final", "max_samples": 2048}})
        run_dir = OUT / f"m{m}"
        run(cfg, run_dir)
        rows = [r for r in read_table(run_dir / "layer_metrics.csv")
                if r["metric"] == "effective_rank"]
        acc = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["test_acc"]
        ranks = [float(r["value"]) for r in rows]  # type: ignore[arg-type]
        print(f"m={m}: test acc {acc:.3f}; effective rank by layer "
              + ", ".join(f"{v:.1f}" for v in ranks))
        ax.plot(range(1, len(ranks) + 1), ranks, "o-", label=f"m={m} (test acc {acc:.2f})")
    ax.set(xlabel="residual layer", ylabel="effective rank", title="residual MLP on RHM")
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path("docs/img").mkdir(parents=True, exist_ok=True)
    fig.savefig("docs/img/metrics_rank_vs_synonyms.png", dpi=90)


if __name__ == "__main__":
    main()
