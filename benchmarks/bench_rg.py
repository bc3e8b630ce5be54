"""Benchmark: empirical NTK of a 72k-parameter MLP on 512 samples, CPU.

    PYTHONPATH=$PWD python benchmarks/bench_rg.py [--n 512] [--threads 1]

Each configuration runs in a fresh subprocess; peak memory is the growth of the peak
resident set (ru_maxrss) over the resident set just before the computation. Baselines
measured in the same run:
- numpy full J: plain-numpy per-sample backprop for the MLP, materialising the whole
  Jacobian J (n, P) in float32, then Θ = J Jᵀ in float64 (written here, no autograd).
- torch.func full J: one vmap(jacrev) over all samples and all parameters.
Ours: ``tmr.rg.empirical_ntk`` with sample and parameter chunks; J never exists whole.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's tmr first

D_IN, HIDDEN = 24, 256  # 24*256+256 + 256*256+256 + 256+1 = 72 449 parameters
CONFIGS: list[tuple[str, int, int]] = [  # (method, sample_chunk, param_chunk)
    ("numpy-full-J", 0, 0),
    ("torch.func-full-J", 0, 0),
    ("tmr.rg chunked", 64, 1 << 16),
    ("tmr.rg chunked", 64, 1 << 14),
    ("tmr.rg chunked", 32, 1 << 12),
    ("tmr.rg chunked", 16, 1 << 10),
]


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _model_and_data(n: int):  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D_IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN),
                          nn.Tanh(), nn.Linear(HIDDEN, 1))
    x = torch.randn(n, D_IN)  # (n, D_IN)
    return model, x


def _numpy_full_j(model, x):  # type: ignore[no-untyped-def]
    """Per-sample gradients of f = w3ᵀ tanh(W2 tanh(W1 x + b1) + b2) + b3 by hand."""
    import numpy as np

    w1, b1, w2, b2, w3, _ = (p.detach().numpy() for p in model.parameters())
    xn = x.numpy()  # (n, d)
    h1 = np.tanh(xn @ w1.T + b1)  # (n, H)
    h2 = np.tanh(h1 @ w2.T + b2)  # (n, H)
    d2 = w3[0] * (1 - h2 ** 2)  # (n, H) ∂f/∂a2
    d1 = (d2 @ w2) * (1 - h1 ** 2)  # (n, H) ∂f/∂a1
    n = xn.shape[0]
    jac = np.concatenate([  # (n, P) in named_parameters order
        (d1[:, :, None] * xn[:, None, :]).reshape(n, -1), d1,
        (d2[:, :, None] * h1[:, None, :]).reshape(n, -1), d2,
        h2, np.ones((n, 1), dtype=xn.dtype)], axis=1).astype(np.float32)
    j64 = jac.astype(np.float64)
    return j64 @ j64.T


def _torch_full_j(model, x):  # type: ignore[no-untyped-def]
    import torch
    from torch.func import functional_call, jacrev, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p, xi):  # type: ignore[no-untyped-def]
        return functional_call(model, p, (xi.unsqueeze(0),)).reshape(-1)

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    j = torch.cat([v.reshape(x.shape[0], -1) for v in jac.values()], dim=1).double()
    return (j @ j.T).numpy()


def worker(method: str, sample_chunk: int, param_chunk: int, n: int) -> dict[str, float]:
    import numpy as np

    from tmr.rg import empirical_ntk

    model, x = _model_and_data(n)
    n_params = sum(p.numel() for p in model.parameters())
    _numpy_full_j(*_model_and_data(4))  # warm-up of code paths, tiny
    before = _rss_mb()
    t0 = time.perf_counter()
    if method == "numpy-full-J":
        theta = _numpy_full_j(model, x)
    elif method == "torch.func-full-J":
        theta = _torch_full_j(model, x)
    else:
        theta = empirical_ntk(model, x, sample_chunk=sample_chunk, param_chunk=param_chunk)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    ref = _numpy_full_j(model, x)
    rel_err = float(np.abs(theta - ref).max() / np.abs(ref).max())
    return {"seconds": secs, "peak_mb": max(peak - before, 0.0), "n_params": n_params,
            "rel_err": rel_err}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--n", type=int, default=512, help="number of samples")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per run")
    ap.add_argument("--worker", nargs=3, metavar=("METHOD", "SCHUNK", "PCHUNK"))
    args = ap.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        method, sc, pc = args.worker
        print(json.dumps(worker(method, int(sc), int(pc), args.n)))
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    rows = []
    for method, sc, pc in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--threads",
                              str(args.threads), "--worker", method, str(sc), str(pc)],
                             capture_output=True, text=True, env=env, check=True)
        rows.append((method, sc, pc, json.loads(out.stdout.strip().splitlines()[-1])))
    base = rows[0][3]
    print(f"eNTK of a {D_IN}-{HIDDEN}-{HIDDEN}-1 tanh MLP ({base['n_params']:,.0f} parameters), "
          f"n = {args.n} samples, CPU, {args.threads} thread(s); peak = growth of peak RSS.")
    print()
    print("| method | sample chunk | param chunk | time s | × numpy | peak MB | × numpy "
          "| rel. err |")
    print("|---|---|---|---|---|---|---|---|")
    for method, sc, pc, r in rows:
        print(f"| {method} | {sc or '–'} | {pc or '–'} | {r['seconds']:.2f} "
              f"| {r['seconds'] / base['seconds']:.2f} | {r['peak_mb']:.0f} "
              f"| {r['peak_mb'] / max(base['peak_mb'], 1e-9):.2f} | {r['rel_err']:.1e} |")

if __name__ == "__main__":
    main()
