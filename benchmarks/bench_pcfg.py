"""PCFG: sampling with full trees, inside-outside throughput, exact next-token distributions.

    python benchmarks/bench_pcfg.py [--n 65536] [--repeats 2] [--threads 1]

Cases:

1. the layered cfg3-style preset (mean length 251, max_length 400), full trees
   (spans, parents, rules, per-token ancestors at every depth);
2. inside + outside + span posteriors on batches of length-30 sequences of a random
   CNF grammar with 10 nonterminals;
3. exact next-token distributions of every prefix of one layered sequence (lengths
   100, 200, 400);
4. soft levels (per-depth ancestor posteriors, :mod:`generators.pcfg_soft`) of 256
   sampled strings of the layered preset.

Baselines, written here and measured in the same run: (1) a per-sequence Python
sampler with an explicit stack that returns the string only (what public PCFG code
does); (2) a per-sequence, per-span numpy CKY inside pass (no outside). BLAS is
limited to ``--threads`` threads (1 = the targets' "one core"). Throughputs use the
process CPU time (fair on a shared machine; wall times are printed below the table).
Peak memory is the tracemalloc peak of one call. Next-token distributions of the
layered grammar are also timed with the general prefix-probability chart (the
previous method) up to length 200, and soft levels with the scipy sparse mat-vec
recursion (the previous method, now the fallback without numba) on the first
``--soft-baseline`` of the same strings. Sampling, inside-outside and soft levels run
compiled kernels (numba, :mod:`generators._jit`); they are compiled (or loaded from
the on-disk cache) before anything is timed.
"""

from __future__ import annotations

import argparse
import os
import sys


def _limit_threads(argv: list[str]) -> None:
    n = "1"
    if "--threads" in argv:
        n = argv[argv.index("--threads") + 1]
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, n)


_limit_threads(sys.argv)

import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from generators import pcfg, pcfg_soft  # noqa: E402
from generators import pcfg_inference as inf  # noqa: E402
from generators._jit import HAVE_NUMBA  # noqa: E402
from generators.pcfg_grammar import Grammar  # noqa: E402


def baseline_sample(g: Grammar, n: int, seed: int, max_length: int) -> list[list[int]]:
    """Strings only, one sequence at a time, explicit stack (rejection at max_length)."""
    gen = np.random.default_rng(seed)
    N = g.n_nonterminals
    rules_of = [np.flatnonzero(g.rule_lhs == a) for a in range(N)]
    cdf = [np.cumsum(g.rule_prob[r]) for r in rules_of]
    rhs = [[int(c) for c in g.rule_rhs[r, :g.rule_len[r]]] for r in range(g.n_rules)]
    out: list[list[int]] = []
    while len(out) < n:
        stack: list[int] = [0]
        tokens: list[int] = []
        while stack and len(tokens) <= max_length:
            s = stack.pop()
            if s >= N:
                tokens.append(s - N)
                continue
            r = rules_of[s][min(int(np.searchsorted(cdf[s], gen.random())), len(cdf[s]) - 1)]
            stack.extend(reversed(rhs[r]))
        if len(tokens) <= max_length:
            out.append(tokens)
    return out


def baseline_inside(g: Grammar, x: np.ndarray) -> np.ndarray:
    """CKY inside probabilities one sequence and one span at a time (linear space)."""
    t = inf.tables(g)
    N = t.lex.shape[0]
    P = t.pbin.reshape(N, N, N)  # [B, C, A]
    out = []
    for seq in x:
        n = len(seq)
        c = np.zeros((n + 1, n + 1, N))
        for i in range(n):
            c[i, i + 1] = t.ustar @ t.lex[:, seq[i]]
        for w in range(2, n + 1):
            for i in range(n - w + 1):
                acc = np.zeros(N)
                for k in range(i + 1, i + w):
                    acc += np.einsum("b,c,bca->a", c[i, k], c[k, i + w], P)
                c[i, i + w] = t.ustar @ acc
        out.append(c[0, n, 0])
    return np.array(out)


#: wall-clock seconds of every measure() call, next to the CPU seconds it reports (on a
#: shared, loaded machine the process CPU time is the fair single-core figure)
WALL: list[float] = []


def measure(fn, repeats: int) -> tuple[float, float]:
    """(best process CPU seconds, peak MB of one call); the best wall time goes to WALL."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    best = wall = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - t0)
    WALL.append(wall)
    return best, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=65536, help="sequences per sampling draw")
    ap.add_argument("--batch", type=int, default=2048, help="sequences per inference batch")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    ap.add_argument("--lengths", default="100,200,400", help="next-token sequence lengths")
    ap.add_argument("--soft", type=int, default=256, help="strings for the soft levels")
    ap.add_argument("--soft-baseline", type=int, default=32,
                    help="of which the scipy recursion does the first")
    args = ap.parse_args()
    print("| case | n | throughput | peak MB | baseline throughput | baseline peak MB | "
          "speed-up |")
    print("|---|---|---|---|---|---|---|")

    layered = pcfg.make_world(preset="layered")
    cnf = pcfg.make_world(preset="random_cnf", rng=0)
    warm = pcfg.sample(cnf, 64, rng=0, max_length=12, max_depth=24)  # compile the kernels
    inf.span_posteriors(cnf, warm.x[:1, :int(warm.aux["lengths"][0])].astype(int))
    pcfg.sample(layered, 1, rng=0, max_length=400)
    t, mem = measure(lambda: pcfg.sample(layered, args.n, rng=1, max_length=400), args.repeats)
    s = pcfg.sample(layered, args.n, rng=1, max_length=400)
    tokens = float(s.aux["lengths"].sum())
    nb = 2000
    tb, memb = measure(lambda: baseline_sample(layered, nb, 1, 400), 1)
    print(f"| sample layered, full trees (mean length {tokens / args.n:.0f}) | {args.n} | "
          f"{args.n / t:,.0f} seq/s, {tokens / t / 1e6:,.2f} M tokens/s | {mem:,.0f} | "
          f"{nb / tb:,.0f} seq/s (strings only) | {memb:,.0f} | {(args.n / t) / (nb / tb):.1f}x |")

    x = np.zeros((0, 30), int)
    seed = 2
    while len(x) < args.batch:  # length-30 strings of the grammar
        smp = pcfg.sample(cnf, 16384, rng=seed, max_length=60, max_depth=60)
        x = np.concatenate([x, smp.x[smp.aux["lengths"] == 30][:, :30].astype(int)])
        seed += 1
    x = x[:args.batch]
    t, mem = measure(lambda: inf.span_posteriors(cnf, x), args.repeats)
    ti, _ = measure(lambda: inf.log_prob(cnf, x), args.repeats)
    nb = 8
    tb, memb = measure(lambda: baseline_inside(cnf, x[:nb]), 1)
    np.testing.assert_allclose(np.log(baseline_inside(cnf, x[:nb])), inf.log_prob(cnf, x[:nb]),
                               rtol=1e-9)
    print(f"| inside+outside+posteriors, length 30, {inf.tables(cnf).lex.shape[0]} "
          f"nonterminals | {len(x)} | {len(x) / t:,.0f} seq/s (inside only {len(x) / ti:,.0f}) | "
          f"{mem:,.0f} | {nb / tb:,.1f} seq/s (inside only) | {memb:,.1f} | "
          f"{(len(x) / t) / (nb / tb):,.0f}x |")

    for n in (int(v) for v in args.lengths.split(",")):
        cand = s.x[s.aux["lengths"] >= n]
        seq = cand[:1, :n].astype(int)
        t, mem = measure(lambda q=seq: inf.next_token_distributions(layered, q), 1)
        base = "- | - | -"
        if n <= 200:  # the cubic chart takes ~20 s at length 400
            tb, memb = measure(lambda q=seq: inf._next_token_chart(layered, q), 1)
            base = f"{tb:.2f} s (prefix-probability chart) | {memb:,.0f} | {tb / t:,.0f}x"
        print(f"| next-token distributions, every prefix of one layered sequence, length {n} | "
              f"1 | {t:.2f} s | {mem:,.0f} | {base} |")
    xs, ls = s.x[:args.soft], s.aux["lengths"][:args.soft]
    pcfg_soft.posterior_levels(layered, xs[:1], ls[:1])          # compile (or load) the kernel
    t, mem = measure(lambda: pcfg_soft.posterior_levels(layered, xs, ls), args.repeats)
    nb = min(args.soft_baseline, len(xs))
    tb, memb = measure(lambda: pcfg_soft.posterior_levels_scipy(layered, xs[:nb], ls[:nb]), 1)
    for p, q in zip(pcfg_soft.posterior_levels(layered, xs[:nb], ls[:nb]),
                    pcfg_soft.posterior_levels_scipy(layered, xs[:nb], ls[:nb]), strict=True):
        np.testing.assert_allclose(p, q, rtol=0, atol=1e-6)
    tok, tokb = float(ls.sum()), float(ls[:nb].sum())
    print(f"| soft levels (ancestor posteriors, every depth), layered, mean length "
          f"{tok / len(xs):.0f} | {len(xs)} | {len(xs) / t:,.0f} seq/s, {tok / t / 1e3:,.0f} k "
          f"tokens/s | {mem:,.0f} | {nb / tb:,.1f} seq/s, {tokb / tb / 1e3:,.1f} k tokens/s "
          f"(scipy mat-vecs, first {nb}) | {memb:,.0f} | {(tok / t) / (tokb / tb):,.0f}x |")
    print(f"\nTimes are process CPU seconds (BLAS {args.threads} thread; numba "
          f"{'on' if HAVE_NUMBA else 'off'}); best wall seconds of the same calls: "
          f"{', '.join(f'{w:.3g}' for w in WALL)}")


if __name__ == "__main__":
    main()
