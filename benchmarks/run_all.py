"""Run every benchmark and write one table file, ``benchmarks/results.md``.

    python benchmarks/run_all.py [--only rhm,probe]

Each ``bench_<name>.py`` prints a markdown table (throughput, peak memory and ratios
against a baseline measured in the same run); this script runs them one after the
other in fresh processes and collects their output with the machine it ran on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--out", default=str(HERE / "results.md"))
    args = ap.parse_args()
    names = sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    cpu = platform.processor() or platform.machine()
    parts = [
        "# Benchmark results",
        "",
        f"Written by `benchmarks/run_all.py` on {dt.date.today()}: {cpu}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}.",
        "Ratios compare against baselines measured in the same run.",
    ]
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, str(HERE / f"bench_{name}.py")],
                             capture_output=True, text=True, check=False)
        took = time.perf_counter() - t0
        print(res.stdout, res.stderr[-2000:] if res.returncode else "", flush=True)
        body = res.stdout.strip() if res.returncode == 0 else (
            f"failed (exit {res.returncode}):\n\n```\n{res.stderr[-2000:]}\n```")
        parts += ["", f"## {name} ({took:.0f} s)", "", body]
    Path(args.out).write_text("\n".join(parts) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
