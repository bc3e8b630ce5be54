"""Random hierarchy model: samples/s and peak memory, full trees included.

    python benchmarks/bench_rhm.py [--n 1048576] [--repeats 3]

Cases: (v=n=8, m=4, s=2, L=3), (v=n=32, m=8, s=2, L=4) and
(v=n=32, m=8, s=2, L=6), with and without replacement. Every draw returns all
levels and every node's rule index. The baseline is a plain-numpy RHM written here
(`Generator.integers` for each node's rule, a row gather per level on the whole
draw): the straightforward vectorised code, measured in the same run. Peak memory
is the tracemalloc peak of numpy allocations during the draw (the arrays returned
count too: 190 bytes/sample at L=6).
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import measure  # benchmarks/ is on sys.path when run as a script

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2**20, help="samples per draw")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    header = ("| case | replacement | n | samples/s | peak MB | baseline samples/s | "
              "baseline peak MB | speed-up |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for params in CASES:
        world = rhm.make_world(**params, rng=0)
        label = (f"v=n={params['vocab_size']} m={params['n_synonyms']} s={params['tuple_size']} "
                 f"L={params['n_levels']}")
        for replacement in (True, False):
            n = min(args.n, rhm.n_distinct_inputs(world)) if not replacement else args.n
            t, mem = measure(lambda w=world, k=n, r=replacement: rhm.sample(w, k, rng=1,
                                                                            replacement=r),
                             args.repeats)
            if replacement:
                tb, memb = measure(lambda w=world, k=n: baseline_sample(w, k, 1), args.repeats)
                base = f"{n / tb:,.0f} | {memb:,.0f} | {tb / t:.1f}x"
            else:
                base = "- | - | -"
            print(f"| {label} | {replacement} | {n:,} | {n / t:,.0f} | {mem:,.0f} | {base} |")


if __name__ == "__main__":
    main()
