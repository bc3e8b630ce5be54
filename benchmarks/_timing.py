"""Timing helper shared by the benchmark scripts (run as `python benchmarks/bench_x.py`)."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(best wall seconds over ``repeats`` calls, tracemalloc peak MB of one call)."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best, peak
