"""Percolation generators: lattice sites/s and mean-field points/s, with peak memory.

    python benchmarks/bench_percolation.py [--samples 4] [--repeats 2] [--quick]

Lattice: square site percolation on 1024², an 8-rung ladder around p_c,
every level labelled, parent maps and per-sample ground truth built (and, in a
second row, per-site ground truth too). Baseline: the same uniform field labelled
by 8 independent ``scipy.ndimage.label`` calls (no parent maps, no ground truth).

Mean field: 10^5 and 10^6 points with positions, 6 subcluster levels, parents,
depths and targets. Baseline: a plain-numpy point cloud of the same size
(cluster sizes by inverse CDF, *random recursive* trees ``parent[k] ~ U{0..k-1}``,
positions by the same pointer jumping; no uniform trees, no hierarchy).

Both generators run compiled union–find / tree kernels (``generators._jit``); one
small warm-up call per generator first loads (or compiles) them, so neither timing
nor memory includes compilation. Times are CPU seconds of this process
(``time.process_time``: one core, robust to other jobs on a shared machine); wall
seconds are printed alongside. Peak memory is the tracemalloc peak of numpy
allocations during one call, returned arrays included; the kernels' own scratch
arrays (numba's allocator, not traced) are not in it: about 30 bytes per site for
the lattice (reused across the samples of a call) and one int64 per subcluster for
the mean field.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from functools import partial

import numpy as np
from scipy import ndimage

from generators import percolation as P
from generators import percolation_mf as M


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """(best CPU seconds, wall seconds of that run, peak MiB of one call)."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    best, wall = float("inf"), float("inf")
    for _ in range(repeats):
        c, t = time.process_time(), time.perf_counter()
        fn()
        cpu = time.process_time() - c
        if cpu < best:
            best, wall = cpu, time.perf_counter() - t
    return best, wall, peak


def baseline_lattice(world: P.World, n: int, seed: int) -> None:
    gen = np.random.default_rng(seed)
    for _ in range(n):
        u = gen.random(world.shape)
        for p in world.ps:
            ndimage.label(u < p)


def baseline_points(world: M.World, n: int, seed: int) -> np.ndarray:
    gen = np.random.default_rng(seed)
    sizes = np.searchsorted(world.size_cdf, gen.random(n), side="right") + 1
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    m = int(sizes.sum())
    local = np.arange(m) - np.repeat(start, sizes)
    parent = np.where(local > 0, np.repeat(start, sizes) +
                      (gen.random(m) * np.maximum(local, 1)).astype(np.int64), -1)
    steps = gen.standard_normal((m, world.dim))
    return M.path_sums(parent, steps)[:n]


def lattice_rows(samples: int, repeats: int) -> list[tuple]:
    world = P.make_world(lattice="square", size=1024, n_levels=8)
    P.sample(P.make_world(lattice="square", size=8, n_levels=8), 1, rng=0)  # load kernels
    n_sites = world.n_sites * samples
    base = measure(partial(baseline_lattice, world, samples, 0), repeats)
    rows = [("8 x ndimage.label (baseline)", n_sites, *base, 1.0)]
    for truth in (False, True):
        r = measure(partial(P.sample, world, samples, rng=0, site_truth=truth), repeats)
        name = "percolation.sample" + (" + per-site truth" if truth else "")
        rows.append((name, n_sites, *r, base[0] / r[0]))
    return rows


def mf_rows(sizes: list[int], repeats: int) -> list[tuple]:
    world = M.make_world()
    M.sample(world, 10, rng=0)  # load kernels
    rows = []
    for n in sizes:
        base = measure(partial(baseline_points, world, n, 0), repeats)
        r = measure(partial(M.sample, world, n, rng=0), repeats)
        rows.append(("random recursive trees (baseline)", n, *base, 1.0))
        rows.append(("percolation_mf.sample", n, *r, base[0] / r[0]))
    return rows


def print_table(title: str, unit: str, rows: list[tuple]) -> None:
    print(f"\n{title}")
    print(f"| case | {unit} | CPU s | wall s | {unit}/s (CPU) | peak MiB | bytes/{unit[:-1]} "
          "| speed vs baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, cpu, wall, peak, ratio in rows:
        print(f"| {name} | {n:,} | {cpu:.3f} | {wall:.3f} | {n / cpu:,.0f} | {peak:.1f} | "
              f"{peak * 2**20 / n:.0f} | {ratio:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=4, help="1024² lattices per draw")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="mean field at 10^5 points only")
    args = ap.parse_args()
    print_table("Lattice: square site, 1024², 8 levels (sites counted once per lattice)",
                "sites", lattice_rows(args.samples, args.repeats))
    print_table("Mean field: 6 subcluster levels, d = 2", "points",
                mf_rows([10**5] if args.quick else [10**5, 10**6], args.repeats))


if __name__ == "__main__":
    main()
