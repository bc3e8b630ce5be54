"""Percolation generators: lattice sites/s and mean-field points/s, with peak memory.

    python benchmarks/bench_percolation.py [--samples 4] [--repeats 2] [--quick]

Lattice: square site percolation on 1024², an 8-rung ladder around p_c, every
level labelled, parent maps and per-sample ground truth built (and, in a second row,
per-site ground truth too: the default of ``sample``), ``--samples`` lattices in one
``sample`` call. Baseline: the same uniform fields labelled by 8 independent
``scipy.ndimage.label`` calls each (no parent maps, no ground truth).

Mean field: 10^5 and 10^6 points with positions, 6 subcluster levels, parents,
depths and targets. Baseline: a plain-numpy point cloud of the same size
(cluster sizes by inverse CDF, *random recursive* trees ``parent[k] ~ U{0..k-1}``,
positions by the same pointer jumping; no uniform trees, no hierarchy).

Both generators run compiled union–find / tree kernels (``generators._jit``); one
warm-up call of the measured size first loads (or compiles) them and touches the
allocator, so no timing includes compilation. Times are the **wall-clock** seconds of
the whole call (best of the repeats; rates and ratios are per wall second), with the
process CPU seconds of the same call beside them: on a loaded machine wall exceeds
CPU by the time spent waiting for a core. "process peak" is the peak RSS of a fresh
interpreter that imports the generator and makes one such call (outputs, the kernels'
scratch, interpreter and imports included); "traced" is the tracemalloc peak of
numpy allocations during one call.

Where the wall time of a lattice call goes (4 samples of 1024², 8 rungs, measured with
``perf_counter`` and ``getrusage`` on the 2-core machine of the record): drawing the 4
fields takes about 0.01 s; the union-find kernel computes for about 0.13 s of user time
whether its outputs are fresh or already touched; fresh outputs (int32 ids at every
rung, the parent maps, per-site truth when asked) and the kernel's scratch cost their
first-touch page faults on top, 0.01-0.04 s of system time on a quiet machine and up to
0.4 s when other jobs contend for memory. The kernel's scratch arrays are allocated by
numpy (transparent huge pages: a few hundred faults instead of thousands of 4 kB ones).
What remains between wall and CPU is time spent waiting for a core: with the load
average above the core count both this call and the baseline take about twice their CPU
time by the wall clock.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
from _timing import Timing, fresh_process, timed  # benchmarks/ is on sys.path as a script
from scipy import ndimage

from generators import percolation as P
from generators import percolation_mf as M


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


LATTICE = dict(lattice="square", size=1024, n_levels=8)


def lattice_rows(samples: int, repeats: int) -> list[tuple]:
    world = P.make_world(**LATTICE)
    P.sample(P.make_world(lattice="square", size=8, n_levels=8), 1, rng=0)  # load kernels
    n_sites = world.n_sites * samples
    base = timed(partial(baseline_lattice, world, samples, 0), repeats)
    base_peak = fresh_process(f"""
import numpy as np
from scipy import ndimage
gen = np.random.default_rng(0)
for _ in range({samples}):
    u = gen.random(({world.size}, {world.size}))
    for p in {world.ps.tolist()!r}:
        ndimage.label(u < p)
""")["peak_mb"]
    rows = [("8 x ndimage.label (baseline)", n_sites, base, base_peak, 1.0)]
    for truth in (False, True):
        r = timed(partial(P.sample, world, samples, rng=0, site_truth=truth), repeats)
        peak = fresh_process(f"""
from generators import percolation as P
s = P.sample(P.make_world(**{LATTICE!r}), {samples}, rng=0, site_truth={truth})
""")["peak_mb"]
        name = "percolation.sample" + (" + per-site truth" if truth else "")
        rows.append((name, n_sites, r, peak, base.wall / r.wall))
    return rows


def mf_rows(sizes: list[int], repeats: int) -> list[tuple]:
    world = M.make_world()
    M.sample(world, 10, rng=0)  # load kernels
    rows = []
    for n in sizes:
        base = timed(partial(baseline_points, world, n, 0), repeats)
        r = timed(partial(M.sample, world, n, rng=0), repeats)
        peak = fresh_process(f"""
from generators import percolation_mf as M
s = M.sample(M.make_world(), {n}, rng=0)
""")["peak_mb"]
        rows.append(("random recursive trees (baseline)", n, base, float("nan"), 1.0))
        rows.append(("percolation_mf.sample", n, r, peak, base.wall / r.wall))
    return rows


def print_table(title: str, unit: str, rows: list[tuple]) -> None:
    print(f"\n{title}")
    print(f"| case | {unit} | wall s | CPU s | {unit}/s | process peak MiB | traced MiB | "
          f"traced bytes/{unit[:-1]} | speed vs baseline (wall) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, t, peak, ratio in rows:
        assert isinstance(t, Timing)
        peak_s = "-" if peak != peak else f"{peak:.0f}"
        print(f"| {name} | {n:,} | {t.wall:.3f} | {t.cpu:.3f} | {n / t.wall:,.0f} | {peak_s} | "
              f"{t.traced_mb:.1f} | {t.traced_mb * 2**20 / n:.0f} | {ratio:.2f}x |")


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
