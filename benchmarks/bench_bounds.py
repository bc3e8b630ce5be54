"""Separation-of-scales bounds: CROWN throughput and tightness against PGD.

    python benchmarks/bench_bounds.py [--n 1000] [--threads 1]

Cases: an MLP 64-64-32-C (C = 8) bounded from its input site, on 1,000 inputs,
and a hierarchical CNN stand-in (Conv1d with kernel = stride = s per level, as a CNN matched to
an RHM tree with s = 2, L = 3, v = 8) bounded from its first layer's output; the trained
models are not on main yet, so both are trained here for a few hundred Adam steps on a
Gaussian-mixture task (MLP) or random labels of one-hot sequences (CNN). The subspace is the
PCA tail of the site's activations (keep 8); the observable is the logit margin of the label.

Baselines measured in the same run, in plain numpy written here: interval bound propagation
(IBP; the first layer concretised exactly over the ℓ2 ball, then interval arithmetic) and the
Lipschitz product. Columns: seconds for the 1,000 inputs, peak RSS growth, the mean bound, and
certified / empirical (PGD, 60 steps x 4 restarts x 2 signs) at ε = 0.1, 1, 5.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from torch import nn

from tmr.bounds import core as B

EPS = (0.1, 1.0, 5.0)
KEEP = 8
N_CLASSES = 8


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,), generator=gen)
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def mlp_case(n: int, seed: int) -> tuple[nn.Sequential, torch.Tensor, np.ndarray]:
    torch.manual_seed(seed)  # module init only; the data below use a private generator
    gen = np.random.default_rng(seed)
    centres = gen.normal(size=(N_CLASSES, 64)) * 0.5  # (C, 64)
    y = gen.integers(0, N_CLASSES, size=4 * n)  # (4n,)
    x = centres[y] + gen.normal(size=(4 * n, 64))  # (4n, 64)
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                        nn.Linear(32, N_CLASSES))
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    train(net, xt, yt, 300, seed)
    return net, xt[:n], y[:n]


def cnn_case(n: int, seed: int) -> tuple[nn.Sequential, torch.Tensor, np.ndarray]:
    """Tail from layers.0.post of a 3-level tree CNN (v = 8, s = 2, width 32)."""
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    v, s, width, length = 8, 2, 32, 8
    tok = gen.integers(0, v, size=(4 * n, length))  # (4n, 8)
    x = np.eye(v)[tok].transpose(0, 2, 1)  # (4n, v, 8) one-hot channels
    y = tok[:, :3].sum(1) % N_CLASSES  # a label that needs several tokens
    first = nn.Sequential(nn.Conv1d(v, width, s, stride=s), nn.ReLU())
    tail = nn.Sequential(nn.Conv1d(width, width, s, stride=s), nn.ReLU(),
                         nn.Conv1d(width, width, s, stride=s), nn.ReLU(), nn.Flatten(),
                         nn.Linear(width, N_CLASSES))
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    train(nn.Sequential(first, tail), xt, yt, 300, seed)
    with torch.no_grad():
        h = first(xt[:n])  # (n, 32, 4): the site's activations
    return tail, h, y[:n]


def np_affine_layers(tail: nn.Sequential, shape: tuple[int, ...]) -> list:
    """[(kind, W, b)] with dense float64 matrices, reusing the library's compiler."""
    ops, _ = B._compile(tail, shape)
    return [("affine", o.W.numpy(), o.b.numpy()) if isinstance(o, B._Affine) else ("relu",)
            for o in ops]


def np_ibp(layers: list, h: np.ndarray, V: np.ndarray, C: np.ndarray, g0: np.ndarray,
           eps: float) -> np.ndarray:
    """Plain-numpy IBP of max |margin change|: exact ℓ2 ball through layer 1, then intervals."""
    _, W, b = layers[0]
    mid = h @ W.T + b  # (n, m)
    rad = np.broadcast_to(eps * np.linalg.norm(W @ V, axis=1), mid.shape)  # (n, m)
    for layer in layers[1:]:
        if layer[0] == "relu":
            lo, hi = np.maximum(mid - rad, 0), np.maximum(mid + rad, 0)
            mid, rad = (lo + hi) / 2, (hi - lo) / 2
        else:
            _, W, b = layer
            mid, rad = mid @ W.T + b, rad @ np.abs(W).T
    s_mid = np.einsum("nso,no->ns", C, mid)  # (n, s) margins l_y − l_j
    s_rad = np.einsum("nso,no->ns", np.abs(C), rad)
    lo, hi = (s_mid - s_rad).min(1), (s_mid + s_rad).min(1)  # margin = min_j s_j
    return np.maximum(hi - g0, g0 - lo)


def np_lipschitz(layers: list, V: np.ndarray, C: np.ndarray, eps: float) -> np.ndarray:
    norms = [np.linalg.norm(lay[1] @ V if i == 0 else lay[1], 2)
             for i, lay in enumerate(layers[:-1]) if lay[0] == "affine"]
    last = np.linalg.norm(C @ layers[-1][1], axis=-1).max(1)  # (n,)
    return eps * last * np.prod(norms)


def run_case(name: str, tail: nn.Sequential, h: torch.Tensor, y: np.ndarray) -> list[list]:
    flat = h.reshape(len(h), -1).double().numpy()  # (n, d)
    _, V = B.pca_split(flat, KEEP)  # (d, d − 8) tail
    obs = B.margin(y)
    shape = tuple(h.shape[1:])
    B.bound(tail, h[:8], V, B.margin(y[:8]), [1.0], steps=0)  # warm-up
    rows = []
    layers = np_affine_layers(tail, shape)
    hd = h.double().numpy().reshape(len(h), -1)
    C = obs.specs(len(h), N_CLASSES)[0].numpy()  # (n, C-1, C) margin specs
    for eps in EPS:
        m0 = rss_mb()
        t0 = time.perf_counter()
        res = B.bound(tail, h, V, obs, [eps], steps=0)
        t_crown = time.perf_counter() - t0
        m_crown = rss_mb() - m0
        t0 = time.perf_counter()
        emp = B.bound(tail, h, V, obs, [eps], steps=B.ATTACK_STEPS).empirical[0]
        t_pgd = time.perf_counter() - t0
        t0 = time.perf_counter()
        ibp = np_ibp(layers, hd, V, C, res.g0, eps)
        t_ibp = time.perf_counter() - t0
        t0 = time.perf_counter()
        lip = np_lipschitz(layers, V, C, eps)
        t_lip = time.perf_counter() - t0
        assert res.certified is not None and res.crown is not None
        assert np.all(emp <= res.certified), "unsound bound"
        e = emp.mean()
        for method, t, mem, val in [("CROWN (tmr)", t_crown, m_crown, res.crown[0]),
                                    ("certified=min (tmr)", t_crown, m_crown, res.certified[0]),
                                    ("IBP (numpy)", t_ibp, 0.0, ibp),
                                    ("Lipschitz (numpy)", t_lip, 0.0, lip),
                                    ("PGD (tmr)", t_pgd, 0.0, emp)]:
            rows.append([name, eps, method, t, mem, val.mean(), val.mean() / e])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="inputs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (shared machine: 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = run_case("MLP 64-64-32-8", *mlp_case(args.n, 0))
    rows += run_case("tree CNN (32x4 site)", *cnn_case(args.n, 1))
    print(f"{args.n} inputs, PCA tail (keep {KEEP}), margin, torch threads {args.threads}\n")
    print("| model | ε | method | seconds | peak RSS +MB | mean bound | / PGD |")
    print("|---|---|---|---|---|---|---|")
    for name, eps, method, t, mem, val, ratio in rows:
        print(f"| {name} | {eps:g} | {method} | {t:.3f} | {mem:.0f} | {val:.4g} | {ratio:.3g} |")


if __name__ == "__main__":
    main()
