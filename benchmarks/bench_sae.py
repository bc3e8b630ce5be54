"""Benchmark: SAE training, width 8 × 256 = 2048 on 100k activations of width 256.

    PYTHONPATH=$PWD python benchmarks/bench_sae.py [--n 100000] [--threads 1] [--kinds topk]

Activations: a planted sparse dictionary (512 unit atoms in R^256, ~8 active per row, plus
1 % noise), so the FVU column means something. Training uses ``SAEConfig`` defaults (Adam,
batch 1024, 3 epochs). Baseline measured in the same run: the same TopK SAE with a dense
decoder (codes scattered into an (n, m) matrix, then f W_dec), one epoch. The target is
< 120 s wall for TopK on 2 CPU cores. A CUDA row is added where a GPU exists.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's tmr first

from tmr.metrics.features import fvu
from tmr.sae import SAEConfig, SparseAutoencoder, dictionary, encode, train_sae

D, WIDTH, ATOMS, ACTIVE = 256, 2048, 512, 8


def activations(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((ATOMS, D)).astype(np.float32)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    idx = rng.integers(0, ATOMS, (n, ACTIVE))
    val = rng.uniform(1, 2, (n, ACTIVE)).astype(np.float32)
    x = np.einsum("nk,nkd->nd", val, atoms[idx])
    return x + 0.01 * rng.standard_normal((n, D)).astype(np.float32)


class DenseTopK(SparseAutoencoder):
    """TopK with the dense decoder (the straightforward implementation)."""

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        u = (x - self.centre) / self.scale
        f = self.encode(x)
        return ((u - f @ self.W_dec - self.b_dec) ** 2).sum(1).mean() / x.shape[1]


def timed(x: np.ndarray, cfg: SAEConfig, device: str) -> tuple[float, float, float, float]:
    """(wall s, CPU s, FVU, mean L0) of one training run."""
    t0, c0 = time.perf_counter(), time.process_time()
    sae = train_sae(x, cfg, 0, device=device)
    if device != "cpu":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    sub = x[:10000]
    f = encode(sae, sub)
    dec, off = dictionary(sae)
    return wall, cpu, fvu(sub, f @ dec + off), float((f > 0).sum(1).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--kinds", default="topk,matryoshka,relu")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = activations(args.n)
    print(f"SAE width {WIDTH} on {args.n:,} activations of width {D}, {args.threads} torch "
          f"threads, defaults (batch 1024, 3 epochs, k = 16).\n")
    print("| kind | device | epochs | wall s | CPU s | s / epoch | FVU | L0 |")
    print("|---|---|---|---|---|---|---|---|")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for kind in args.kinds.split(","):
            cfg = SAEConfig(kind=kind, width=WIDTH)
            per_epoch = math.ceil(args.n / cfg.batch_size)
            epochs = max(cfg.epochs, math.ceil(cfg.min_steps / per_epoch))  # as train_sae
            wall, cpu, err, l0 = timed(x, cfg, device)
            print(f"| {kind} | {device} | {epochs} | {wall:.1f} | {cpu:.1f} | "
                  f"{wall / epochs:.1f} | {err:.3f} | {l0:.1f} |", flush=True)
    if not args.no_baseline:
        import tmr.sae as S

        cfg = SAEConfig(kind="topk", width=WIDTH, epochs=1, min_steps=0)
        original = S.SparseAutoencoder
        S.SparseAutoencoder = DenseTopK  # type: ignore[misc]
        try:
            wall, cpu, err, l0 = timed(x, cfg, "cpu")
        finally:
            S.SparseAutoencoder = original  # type: ignore[misc]
        print(f"| topk, dense decoder (baseline) | cpu | 1 | {wall:.1f} | {cpu:.1f} | "
              f"{wall:.1f} | {err:.3f} | {l0:.1f} |")


if __name__ == "__main__":
    main()
