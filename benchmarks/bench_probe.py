"""Benchmark: a full probe grid (6 sites x 4 levels x 10k samples, width 256) on CPU.

Run:  PYTHONPATH=. python benchmarks/bench_probe.py [--n 10000] [--threads 2]

Times the three parts of probing a trained model (an untrained MLP has the same
cost): data loading (HDF5 -> arrays), forward passes (activations at 6 sites) and
probe fitting (ridge with inner 3-fold CV over 6 λ, control tasks, random and group
splits), and prints the share of each. Baseline, measured in the same run: a plain
numpy ridge that solves the normal equations separately for every target, fold and
λ (what a loop over scikit-learn-style classifiers does) on one site and the random
split, against our shared-SVD fit of the same site and split.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tmr import io
from tmr.config import data_config_from_dict
from tmr.models import ModelConfig, build_model, input_spec
from tmr.probes import (
    ProbeConfig,
    collect_activations,
    control_labels,
    probe_grid,
    random_split,
    type_ids,
)
from tmr.train.data_adapter import adapt_x

SITES = ["embed", "layers.0.post", "layers.1.post", "layers.2.post", "layers.3.post", "head"]


def numpy_ridge_baseline(h: np.ndarray, levels: dict[str, np.ndarray], x: np.ndarray,
                         cfg: ProbeConfig, seed: int) -> float:
    """Per target, fold and λ: standardise, solve (XᵀX + λnI) W = XᵀY, score. Returns
    the mean accuracy (so the work cannot be skipped)."""
    rng = np.random.default_rng(seed)
    types = type_ids(x)
    ys = []
    for y in levels.values():
        ys += [y[:, p] for p in range(y.shape[1])]
        c = control_labels(y, types, rng)
        ys += [c[:, p] for p in range(c.shape[1])]
    train, test = random_split(len(h), cfg.test_fraction, rng)
    fold = rng.permutation(len(train)) % cfg.inner_folds
    accs = []
    for y in ys:
        best, best_acc = cfg.ridge_grid[0], -1.0
        for lam in cfg.ridge_grid:
            acc = 0.0
            for k in range(cfg.inner_folds):
                fit, val = train[fold != k], train[fold == k]
                acc += _fit_score(h[fit], y[fit], h[val], y[val], lam)
            if acc >= best_acc:
                best, best_acc = lam, acc
        accs.append(_fit_score(h[train], y[train], h[test], y[test], best))
    return float(np.mean(accs))


def _fit_score(h_tr: np.ndarray, y_tr: np.ndarray, h_te: np.ndarray, y_te: np.ndarray,
               lam: float) -> float:
    mu = h_tr.mean(0)
    scale = np.sqrt(((h_tr - mu) ** 2).sum(1).mean() / h_tr.shape[1]) or 1.0
    a, b = (h_tr - mu) / scale, (h_te - mu) / scale
    classes = np.unique(y_tr)
    onehot = (y_tr[:, None] == classes[None, :]).astype(float)
    w = np.linalg.solve(a.T @ a + lam * len(a) * np.eye(a.shape[1]),
                        a.T @ (onehot - onehot.mean(0)))
    pred = classes[np.argmax(b @ w + onehot.mean(0), 1)]
    return float(np.mean([np.mean(pred[y_te == c] == c) for c in np.unique(y_te)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rhm = {"name": "rhm", "vocab_size": 8, "n_classes": 8, "n_synonyms": 4, "tuple_size": 2,
           "n_levels": 3}
    with tempfile.TemporaryDirectory() as tmp:
        path = io.write_dataset(Path(tmp) / "rhm.h5", data_config_from_dict(
            {"seed": 0, "n_samples": args.n, "generator": rhm}))
        t0, c0 = time.perf_counter(), time.process_time()
        sample, _ = io.read(path)
        x = adapt_x(sample.x, 8)
        levels = {n: sample.level(n).reshape(args.n, -1) for n in sample.level_names}
        t_load, c_load = time.perf_counter() - t0, time.process_time() - c0
    model = build_model(ModelConfig(kind="mlp", width=args.width, n_layers=4),
                        input_spec(sample.x.shape, True, 8), 1, 8,
                        torch.Generator().manual_seed(0))
    t0, c0 = time.perf_counter(), time.process_time()
    acts = collect_activations(model, x, SITES, batch_size=2048)
    t_fwd, c_fwd = time.perf_counter() - t0, time.process_time() - c0
    cfg = ProbeConfig()
    t0, c0 = time.perf_counter(), time.process_time()
    rows = probe_grid(acts, levels, sample.x, cfg, step=0, seed=0, rng=1)
    t_fit, c_fit = time.perf_counter() - t0, time.process_time() - c0
    total, c_total = t_load + t_fwd + t_fit, c_load + c_fwd + c_fit

    one = {"layers.0.post": acts["layers.0.post"]}
    coarse = {k: levels[k] for k in ("root", "level1")}  # 3 positions: keeps the baseline short
    single = ProbeConfig(group_split=False)
    t0 = time.perf_counter()
    probe_grid(one, coarse, sample.x, single, step=0, seed=0, rng=1)
    t_ours_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    numpy_ridge_baseline(one["layers.0.post"].astype(np.float64), coarse, sample.x, single, 1)
    t_base_one = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"Probe grid: {len(SITES)} sites x {len(levels)} levels x {args.n} samples, "
          f"width {args.width}, torch threads {torch.get_num_threads()}, {len(rows)} rows; "
          f"peak RSS {peak_mb:.0f} MB.")
    print()
    print("| part | wall s | share | CPU s |")
    print("|---|---|---|---|")
    for name, t, c in (("data loading (HDF5 -> arrays)", t_load, c_load),
                       ("forward passes (6 sites)", t_fwd, c_fwd),
                       ("probe fitting (ridge, CV, control)", t_fit, c_fit),
                       ("total", total, c_total)):
        print(f"| {name} | {t:.2f} | {t / total:.0%} | {c:.2f} |")
    print()
    print(f"One site (layers.0.post), levels root + level1, random split "
          f"({sum(v.shape[1] for v in coarse.values())} positions, real + control targets):")
    print()
    print("| method | seconds | speed-up |")
    print("|---|---|---|")
    print(f"| numpy ridge per target/fold/λ (baseline) | {t_base_one:.2f} | 1.0 |")
    print(f"| tmr shared-eigendecomposition ridge (torch) | {t_ours_one:.2f} | "
          f"{t_base_one / t_ours_one:.1f} |")


if __name__ == "__main__":
    main()
