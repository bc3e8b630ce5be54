"""Random hierarchy model: samples/s and peak memory, full trees included.

    python benchmarks/bench_rhm.py [--n 1048576] [--repeats 3]

Cases: (v=n=8, m=4, s=2, L=3), (v=n=32, m=8, s=2, L=4) and (v=n=32, m=8, s=2,
L=6), with and without replacement. Every draw returns all levels and every node's
rule index. The baseline is a plain-numpy RHM written here (`Generator.integers` for
each node's rule, a row gather per level on the whole draw): the straightforward
vectorised code, measured in the same run.

Times are the wall-clock seconds of the whole ``sample`` call (best of the repeats),
CPU seconds beside them; rates are per wall second. Memory: "process peak" is the
peak RSS of a fresh interpreter that imports the generator, builds the world and
draws once (everything a user's script holds, interpreter included; the arrays
returned are 190 bytes/sample at L=6); "traced" is the tracemalloc peak of numpy
allocations during the draw alone.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import fresh_process, timed  # benchmarks/ is on sys.path as a script

from generators import rhm

CASES = [
    dict(vocab_size=8, n_classes=8, n_synonyms=4, tuple_size=2, n_levels=3),
    dict(vocab_size=32, n_classes=32, n_synonyms=8, tuple_size=2, n_levels=4),
    dict(vocab_size=32, n_classes=32, n_synonyms=8, tuple_size=2, n_levels=6),
]


def baseline_sample(world: rhm.World, n: int, seed: int) -> list[np.ndarray]:
    """Plain numpy: one integers() call per level, 2-D fancy indexing of the rules."""
    gen = np.random.default_rng(seed)
    levels = [gen.integers(0, world.n_classes, size=(n, 1))]
    rules = []
    for table in world.rules:  # (n_parents, m, s)
        parents = levels[-1]
        r = gen.integers(0, world.n_synonyms, size=parents.shape)
        rules.append(r)
        levels.append(table[parents, r].reshape(n, -1))
    return levels + rules


def process_peak(params: dict, n: int, replacement: bool) -> float:
    """Peak RSS (MiB) of a fresh process: import, world, one draw of ``n`` samples."""
    return fresh_process(f"""
from generators import rhm
w = rhm.make_world(**{params!r}, rng=0)
s = rhm.sample(w, {n}, rng=1, replacement={replacement})
""")["peak_mb"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2**20, help="samples per draw")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    header = ("| case | replacement | n | wall s | CPU s | samples/s | process peak MiB | "
              "traced MiB | baseline samples/s | baseline traced MiB | speed-up |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for params in CASES:
        world = rhm.make_world(**params, rng=0)
        label = (f"v=n={params['vocab_size']} m={params['n_synonyms']} s={params['tuple_size']} "
                 f"L={params['n_levels']}")
        for replacement in (True, False):
            n = min(args.n, rhm.n_distinct_inputs(world)) if not replacement else args.n
            r = timed(lambda w=world, k=n, rep=replacement: rhm.sample(w, k, rng=1,
                                                                       replacement=rep),
                      args.repeats)
            peak = process_peak(params, n, replacement)
            if replacement:
                b = timed(lambda w=world, k=n: baseline_sample(w, k, 1), args.repeats)
                base = f"{n / b.wall:,.0f} | {b.traced_mb:,.0f} | {b.wall / r.wall:.1f}x"
            else:
                base = "- | - | -"
            print(f"| {label} | {replacement} | {n:,} | {r.wall:.3f} | {r.cpu:.3f} | "
                  f"{n / r.wall:,.0f} | {peak:,.0f} | {r.traced_mb:,.0f} | {base} |")


if __name__ == "__main__":
    main()
