"""Cost of the full layer-metric set: 6 layers x 4 levels, n = 10,000, width 256.

    python benchmarks/bench_metrics.py [--n 10000] [--width 256] [--layers 6] [--jac-samples 128]

BLAS and torch run single-threaded unless BENCH_THREADS is set: on a shared
2-core machine, multi-threaded OpenBLAS spin-waits and was measured up to 100x
slower (eigvalsh of 256 x 256: 1.5 s with 2 threads vs 0.013 s with 1 at load 6).

Activations come from a ReLU MLP (float64, random init) on one-hot RHM inputs
(v=16, n_classes=8, m=4, s=2, L=3: levels root, level1, level2, level3 = x); each
level's label is its first position's symbol (the probes' position-0 convention),
RSA uses the whole latent path. Every metric runs on every layer (and level where
it takes one); the Jacobian rank is taken on ``--jac-samples`` inputs per layer.
Baselines measured in the same run, plain numpy written here: the covariance
``h.T @ h`` of every layer (the floor of the second-moment metrics) and one blocked
n x n distance pass per layer (the floor of the k-NN metrics). Peak memory is the
tracemalloc peak of numpy allocations in one call (torch's allocator is not traced).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import time
import tracemalloc
from collections.abc import Callable

THREADS = os.environ.get("BENCH_THREADS", "1")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = THREADS  # must precede the numpy import

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tmr.metrics as M  # noqa: E402
from generators import rhm  # noqa: E402
from tmr.metrics._common import sq_distance_blocks  # noqa: E402

RHM_PARAMS: dict[str, int] = dict(vocab_size=16, n_classes=8, n_synonyms=4, tuple_size=2,
                                  n_levels=3)
BINS = 30  # paper 002's bin count


def build(n: int, width: int, n_layers: int, seed: int = 0):
    world = rhm.make_world(**RHM_PARAMS, rng=seed)  # type: ignore[arg-type]
    sample = rhm.sample(world, n, rng=seed + 1)
    v = world.vocab_size
    torch.manual_seed(seed)
    dims = [v * sample.x.shape[1]] + [width] * n_layers
    blocks = [torch.nn.Sequential(torch.nn.Linear(a, b), torch.nn.ReLU())
              for a, b in itertools.pairwise(dims)]
    net = torch.nn.Sequential(*blocks).double().eval()

    def encode(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.eye(v)[x].reshape(len(x), -1))  # (n, L_tokens * v)

    def layers(x: np.ndarray) -> dict[str, np.ndarray]:
        out, h = {}, encode(x)
        with torch.no_grad():
            for i, block in enumerate(net):
                h = block(h)
                out[f"layers.{i}"] = h.numpy().copy()  # (n, width)
        return out

    return world, sample, net, encode, layers


def measure(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds of a plain call, tracemalloc peak MB of a second, traced call).

    Timing and memory use separate calls: tracemalloc slows Python-heavy code
    (torch.func) several-fold.
    """
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return wall, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--jac-samples", type=int, default=128)
    ap.add_argument("--knn-samples", type=int, default=4000,
                    help="rows used by the O(n^2 d) k-NN metrics (knn MI, TwoNN); 0: all")
    args = ap.parse_args()
    torch.set_num_threads(int(THREADS))

    _world, sample, net, encode, layers = build(args.n, args.width, args.layers)
    acts = layers(sample.x)  # {site: (n, width)}
    labels = [M.level_labels(lv[:, :1]) for lv in sample.levels]  # position 0 of each level
    x_ids = M.level_labels(sample.x)
    hs = list(acts.values())
    knn_n = args.knn_samples or None
    knn_label = f"{knn_n} rows" if knn_n and knn_n < args.n else "all rows"
    n_lv = len(labels)

    def each_layer(f: Callable[[np.ndarray], object]) -> Callable[[], object]:
        return lambda: [f(h) for h in hs]

    def each_pair(f: Callable[[np.ndarray, np.ndarray], object]) -> Callable[[], object]:
        return lambda: [f(h, y) for h in hs for y in labels]

    xin = encode(sample.x[: args.jac_samples])
    setup = time.perf_counter()
    M.jacobian_rank(net[:1], xin[:2])  # torch.func's one-time set-up, reported apart
    setup = time.perf_counter() - setup

    def jac() -> None:
        for depth in range(1, len(net) + 1):
            M.jacobian_rank(net[:depth], xin)

    def sensitivity() -> None:
        for lv in range(n_lv):
            M.synonym_sensitivity(layers, sample, lv, rng=lv)

    rows: list[tuple[str, int, Callable[[], object]]] = [
        ("baseline: covariance h.T@h", len(hs), each_layer(lambda h: h.T @ h)),
        ("baseline: n x n distance pass", len(hs),
         each_layer(lambda h: [d2.min() for _, d2 in sq_distance_blocks(h)])),
        (f"knn_mi_discrete (4 levels/pass, {knn_label})", len(hs),
         each_layer(lambda h: M.knn_mi_discrete_levels(h, labels, max_samples=knn_n))),
        ("binned_mi (30 bins)", len(hs) * n_lv,
         each_pair(lambda h, y: M.binned_mi(h, y, n_bins=BINS))),
        ("binned_mi_input (30 bins)", len(hs),
         each_layer(lambda h: M.binned_mi_input(h, x_ids, n_bins=BINS))),
        ("input_mi_discrete", len(hs), each_layer(lambda h: M.input_mi_discrete(h, x_ids))),
        ("nc1", len(hs) * n_lv, each_pair(M.nc1)),
        ("rnc1", len(hs) * n_lv, each_pair(M.rnc1)),
        ("nc2", len(hs) * n_lv, each_pair(M.nc2)),
        ("separation_he_su x2 weightings", len(hs) * n_lv,
         each_pair(lambda h, y: (M.separation_he_su(h, y),
                                 M.separation_he_su(h, y, weighting="classes")))),
        ("effective_rank", len(hs), each_layer(M.effective_rank)),
        ("participation_ratio", len(hs), each_layer(M.participation_ratio)),
        (f"twonn ({knn_label})", len(hs), each_layer(lambda h: M.twonn(h, max_samples=knn_n))),
        ("linear_cka (all layer pairs)", len(hs) * (len(hs) - 1) // 2,
         lambda: [M.linear_cka(a, b) for i, a in enumerate(hs) for b in hs[i + 1:]]),
        ("cka_onehot", len(hs) * n_lv, each_pair(M.cka_onehot)),
        ("rsa_tree (1000 pts)", len(hs), each_layer(lambda h: M.rsa_tree(h, sample.levels))),
        (f"jacobian_rank ({args.jac_samples} inputs)", len(hs), jac),
        ("synonym_sensitivity (incl. forward)", n_lv, sensitivity),
    ]

    print(f"n={args.n} width={args.width} layers={len(hs)} levels={n_lv} "
          f"classes/level={[int(y.max()) + 1 for y in labels]} "
          f"cpus={os.cpu_count()} BLAS/torch threads={THREADS} "
          f"load avg={os.getloadavg()[0]:.1f}")
    print("\n| metric | calls | total s | ms/call | peak MB | x covariance |")
    print("|---|---:|---:|---:|---:|---:|", flush=True)
    total, base = 0.0, float("nan")
    for name, calls, fn in rows:  # each row printed as soon as it is measured
        wall, peak = measure(fn)
        if name.startswith("baseline: covariance"):
            base = wall
        elif not name.startswith("baseline"):
            total += wall
        print(f"| {name} | {calls} | {wall:.2f} | {1e3 * wall / calls:.1f} | {peak:.0f} "
              f"| {wall / base:.0f} |", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ntorch.func one-time set-up (first Jacobian call, not in the total): {setup:.1f} s")
    print(f"full metric set: {total:.1f} s wall (target < 60 s on 2 cores); "
          f"process max RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
