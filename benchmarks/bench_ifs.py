"""IFS fractals: points/s with full addresses, images/s with per-pixel address maps.

    python benchmarks/bench_ifs.py [--n 2097152] [--images 40] [--repeats 5]

Points: depth D = 12, every digit of every address returned (``aux["address"]``
(n, 12)) plus three prefix levels. Images: 256 px, 100k points per image, address
maps at levels 1..3 (with and without level-1 soft histograms).

Baselines, plain numpy written here and measured in the same run: points by
``D`` steps of ``x <- A[a] x + b[a]`` (``einsum`` on gathered matrices, digits by
``Generator.choice``); images by the same points binned with ``np.histogram2d``
and no address maps at all (what public fractal renderers compute). Peak memory is
the tracemalloc peak of numpy allocations during one call (the compiled kernels'
own scratch, a few kB, is not traced). Rates are per wall-clock second of the whole
call (best of the repeats), with the process CPU seconds of the same call beside
them. Single process, single thread (numpy's element-wise code, the RNG and the
kernels of ``generators.ifs.kernels`` are single-threaded);
the kernels are compiled, or loaded from numba's cache, before
any timing.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
from _timing import measure, timed  # benchmarks/ is on sys.path when run as a script

from generators import ifs
from generators.ifs import render as ifs_render

DEPTH = 12
SIZE = 256
N_POINTS = 100_000


def baseline_points(world: ifs.World, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain numpy fixed-depth sampling: one random map and one affine step per level."""
    gen = np.random.default_rng(seed)
    lin, off, p = world.system_maps(0)
    addr = gen.choice(world.n_maps, size=(n, DEPTH), p=p).astype(np.uint8)
    x = np.zeros((n, world.dim))
    for j in range(DEPTH - 1, -1, -1):
        a = addr[:, j]
        x = np.einsum("nij,nj->ni", lin[a], x) + off[a]
    return x, addr


def baseline_image(world: ifs.World, seed: int) -> np.ndarray:
    x, _ = baseline_points(world, N_POINTS, seed)
    lo, hi = world.box[0, 0]
    img, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=SIZE, range=[[lo[0], hi[0]],
                                                                   [lo[1], hi[1]]])
    return img


def baseline_images(world: ifs.World, n: int) -> list[np.ndarray]:
    return [baseline_image(world, i) for i in range(n)]


def worlds() -> dict[str, ifs.World]:
    return {"sierpinski (K=3, uniform)": ifs.make_world(system="sierpinski"),
            "fern (K=4, p=.01/.85/.07/.07)": ifs.make_world(system="fern"),
            "random σ-factor (K=4, p∝|det|)": ifs.make_world(n_maps=4, rng=0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2**21, help="points per draw")
    ap.add_argument("--images", type=int, default=40, help="images per draw")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    gen = np.random.default_rng(0)
    t, _ = measure(partial(gen.random, 1 << 24), args.repeats)
    print(f"machine check: numpy draws {(1 << 24) / t / 1e6:,.0f} M uniform doubles/s "
          "(an idle recent x86 core: about 400-600)\n")
    for w in worlds().values():  # compile or load the kernels outside the timings
        ifs.sample(w, 10, rng=0, depth=DEPTH)
        for soft in (0, 1):
            ifs.sample(w, 1, rng=0, mode="images", image_size=SIZE, n_points=10, depth=DEPTH,
                       soft_levels=soft)
        ifs_render.render(w, 0, 0, image_size=SIZE, n_points=10, depth=DEPTH, soft_levels=0)
    print(f"points, D = {DEPTH}, full addresses\n")
    print("| system | n | wall s | CPU s | points/s | peak MB | baseline points/s | "
          "baseline peak MB | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, w in worlds().items():
        r = timed(partial(ifs.sample, w, args.n, rng=1, depth=DEPTH), args.repeats)
        t, mem = r.wall, r.traced_mb
        nb = args.n // 4  # the baseline is slow; its rate does not depend on n
        tb, memb = measure(partial(baseline_points, w, nb, 1), args.repeats)
        print(f"| {label} | {args.n:,} | {t:.3f} | {r.cpu:.3f} | {args.n / t:,.0f} | "
              f"{mem:,.0f} | {nb / tb:,.0f} | "
              f"{memb * args.n / nb:,.0f} (scaled) | {(args.n / t) / (nb / tb):.1f}x |")
    print(f"\nimages, {SIZE} px, {N_POINTS:,} points each, address maps at levels 1..3\n")
    print("| system | soft levels | wall s | CPU s | images/s | peak MB | baseline images/s "
          "(no addresses) | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    m = args.images
    for label, w in worlds().items():
        tb, _ = measure(partial(baseline_images, w, m // 4), args.repeats)
        for soft in (0, 1):
            def draw(w: ifs.World = w, s: int = soft) -> object:
                return ifs.sample(w, m, rng=1, mode="images", image_size=SIZE,
                                  n_points=N_POINTS, depth=DEPTH, n_address_levels=3,
                                  soft_levels=s)
            r = timed(draw, args.repeats)
            t, mem = r.wall, r.traced_mb
            print(f"| {label} | {soft} | {t:.3f} | {r.cpu:.3f} | {m / t:,.1f} | {mem:,.0f} | "
                  f"{(m // 4) / tb:,.1f} | "
                  f"{(m / t) / ((m // 4) / tb):.1f}x |")
    w = worlds()["sierpinski (K=3, uniform)"]
    def renders() -> object:
        return [ifs_render.render(w, i, 1, image_size=SIZE, n_points=N_POINTS, depth=DEPTH,
                                  soft_levels=0) for i in range(m)]
    t, _ = measure(renders, args.repeats)
    print(f"\nrender() alone, sierpinski: {m / t:,.1f} images/s")


if __name__ == "__main__":
    main()
