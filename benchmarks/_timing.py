"""Timing and memory helpers shared by the benchmark scripts.

Run the scripts as ``python benchmarks/bench_x.py`` (this folder is then on
``sys.path``). Every time row reports the **wall-clock** seconds of the whole call
(``time.perf_counter``: what a user waits for, output allocation and page faults
included) with the **CPU** seconds of the same call beside it (``time.process_time``:
user + system time of this process). On a loaded machine wall exceeds CPU by the time
spent waiting for a core; on an idle one they agree for single-threaded code.

Memory rows use :func:`fresh_process`: the peak resident set size of a new
interpreter that runs the snippet, imports included (``VmHWM`` from
``/proc/self/status``, the high-water mark of the process's own address space;
``ru_maxrss`` where ``/proc`` is missing). :func:`timed` also gives the tracemalloc peak
of numpy allocations during one call, which leaves out the interpreter, imported
modules and memory that compiled kernels allocate.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """One measured call: ``wall`` and ``cpu`` seconds of the fastest (by wall) of the
    timed repeats, and ``traced_mb``, the tracemalloc peak of an untimed first call."""

    wall: float
    cpu: float
    traced_mb: float


def timed(fn: Callable[[], object], repeats: int, *, trace: bool = True) -> Timing:
    """Call ``fn`` once untimed (warm-up; traced by tracemalloc when ``trace``), then
    ``repeats`` times; report the repeat with the least wall time and its CPU time."""
    if trace:
        tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else float("nan")
    if trace:
        tracemalloc.stop()
    wall, cpu = float("inf"), float("inf")
    for _ in range(max(1, repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        w, c = time.perf_counter() - t0, time.process_time() - c0
        if w < wall:
            wall, cpu = w, c
    return Timing(wall, cpu, peak)


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """``(best wall seconds, tracemalloc peak MB)`` (:func:`timed`, for older rows)."""
    t = timed(fn, repeats)
    return t.wall, t.traced_mb


_PRELUDE = """
import json as _json, resource as _resource, sys as _sys, time as _time
_t0, _c0 = _time.perf_counter(), _time.process_time()
result = {}
"""

_EPILOGUE = """
_wall, _cpu = _time.perf_counter() - _t0, _time.process_time() - _c0
def _peak_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    r = _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if _sys.platform == "darwin" else r / 1024
print("\\n@@fresh_process@@" + _json.dumps({"wall": _wall, "cpu": _cpu, "peak_mb": _peak_mb(),
                                         **result}))
"""


def fresh_process(code: str, *, timeout: float = 900) -> dict[str, Any]:
    """Run ``code`` in a new interpreter; return ``wall`` and ``cpu`` seconds of the
    snippet (imports included), ``peak_mb`` (peak RSS of the whole process, MiB) and
    whatever the snippet stored in its dict ``result``."""
    script = _PRELUDE + textwrap.dedent(code) + _EPILOGUE
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"fresh process failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    line = out.stdout.rsplit("@@fresh_process@@", 1)[-1]
    return json.loads(line)
