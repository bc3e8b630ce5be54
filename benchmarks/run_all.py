"""Run every benchmark and write one table file, ``benchmarks/results.md``.

    python benchmarks/run_all.py [--only rhm,probe]

Each ``bench_<name>.py`` prints a markdown table (wall-clock and CPU time, peak memory
and ratios against a baseline measured in the same run); this script runs them one
after the other in fresh processes and collects their output with the machine it ran
on. With ``--only``, the named sections of an existing results file are replaced and
the others kept; each section records its date and the load average when it started
(timings on a loaded machine are slower by wall clock than by CPU time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def read_sections(path: Path) -> dict[str, str]:
    """``{name: text}`` of the ``## name (...)`` sections of an existing results file."""
    if not path.is_file():
        return {}
    chunks = re.split(r"^(?=## )", path.read_text(), flags=re.M)
    dated = re.search(r"\bon (\d{4}-\d\d-\d\d)", chunks[0])  # an older file's one date
    out = {}
    for chunk in chunks[1:]:
        title, _, body = chunk.strip().partition("\n")
        name = title[3:].split(" ", 1)[0]
        if dated and not body.strip().startswith("Run on"):
            body = f"\nRun on {dated.group(1)}.\n{body}"
        out[name] = f"{title}\n{body}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--out", default=str(HERE / "results.md"))
    args = ap.parse_args()
    names = sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    cpu = platform.processor() or platform.machine()
    head = [
        "# Benchmark results",
        "",
        f"Written by `benchmarks/run_all.py`: {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.",
        "Ratios compare against baselines measured in the same run.",
    ]
    sections = read_sections(Path(args.out)) if args.only else {}
    for name in names:
        print(f"== {name}", flush=True)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, str(HERE / f"bench_{name}.py")],
                             capture_output=True, text=True, check=False)
        took = time.perf_counter() - t0
        print(res.stdout, res.stderr[-2000:] if res.returncode else "", flush=True)
        body = res.stdout.strip() if res.returncode == 0 else (
            f"failed (exit {res.returncode}):\n\n```\n{res.stderr[-2000:]}\n```")
        sections[name] = (f"## {name} ({took:.0f} s)\n\nRun on {dt.date.today()}, load average "
                          f"{load:.1f} on {os.cpu_count()} cores at the start.\n\n{body}")
    parts = [*head, "", "\n\n".join(sections[k] for k in sorted(sections))]
    Path(args.out).write_text("\n".join(parts) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
