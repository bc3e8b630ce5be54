"""Import cost: wall seconds and whole-process peak RSS of a fresh interpreter.

    python benchmarks/bench_imports.py [--repeats 5]

Each row imports one thing in a new interpreter (nothing cached in ``sys.modules``;
numba's on-disk kernel cache and the OS file cache are warm after the first repeat).
Wall and CPU are the seconds of the import statement itself, best of the repeats by
wall; "process wall" is the whole ``python -c`` run as a user sees it, interpreter
start included. Peak MiB is the process's peak resident set size (``VmHWM``). The
baseline is ``import numpy``, which every generator needs. ``tmr --help`` runs the
CLI entry point (``python -m tmr --help``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from _timing import fresh_process  # benchmarks/ is on sys.path when run as a script

ROWS = [
    ("import numpy (baseline)", "import numpy"),
    ("import generators", "import generators"),
    ("import generators.rhm", "import generators.rhm"),
    ("import generators.pcfg", "import generators.pcfg"),
    ("import generators.percolation", "import generators.percolation"),
    ("import generators.percolation_mf", "import generators.percolation_mf"),
    ("import generators.ifs", "import generators.ifs"),
    ("import tmr.cli", "import tmr.cli"),
]

HEAVY = ("numba", "torch", "scipy", "h5py", "matplotlib")


def import_row(code: str, repeats: int) -> tuple[float, float, float, float, str]:
    """(wall s, CPU s, process wall s, peak MiB, heavy modules loaded) of ``code``."""
    best: dict | None = None
    proc = float("inf")
    snippet = (f"{code}\nresult['heavy'] = sorted(m for m in {HEAVY!r} "
               "if _sys.modules.get(m) is not None)")
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = fresh_process(snippet)
        proc = min(proc, time.perf_counter() - t0)
        if best is None or r["wall"] < best["wall"]:
            best = r
    assert best is not None
    return best["wall"], best["cpu"], proc, best["peak_mb"], ", ".join(best["heavy"]) or "-"


def help_wall(repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tmr", "--help"], capture_output=True, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print("| import | wall s | CPU s | process wall s | peak MiB | heavy modules loaded |")
    print("|---|---:|---:|---:|---:|---|")
    for name, code in ROWS:
        wall, cpu, proc, peak, heavy = import_row(code, args.repeats)
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {proc:.3f} | {peak:.0f} | {heavy} |")
    print(f"\n`tmr --help`, whole process: {help_wall(args.repeats):.2f} s wall (best of "
          f"{args.repeats})")


if __name__ == "__main__":
    main()
