"""Optional compilation of the generators' inner loops with numba.

A few loops have no fast numpy form: union-find over a lattice, a chaos game that
scatters points into address maps, dynamic programming over spans, level-by-level tree
growth with data-dependent lengths. They are written once, as plain Python functions
over numpy arrays, and decorated with :func:`jit`.

With numba installed (a dependency of the ``tmr`` distribution) :func:`jit` compiles a
kernel to machine code on its first call and caches it on disk, so later processes
start at once. Without numba, ``import generators`` still needs only numpy, scipy and
networkx: the same functions run as ordinary Python, giving identical results far more
slowly. Kernels never draw random numbers themselves: their random inputs are arrays
drawn by the caller from an explicit :class:`numpy.random.Generator`, so a seed gives
the same bytes with or without numba. ``kernel.py_func`` is the uncompiled function
(the tests run both and compare).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

try:  # pragma: no cover - exercised by whichever environment runs the tests
    import numba as _numba
except ImportError:  # pragma: no cover
    _numba = None  # type: ignore[assignment]

#: True when kernels are compiled; False when they run as plain Python.
HAVE_NUMBA = _numba is not None


def jit(fn: F) -> F:
    """Compile ``fn`` with ``numba.njit(cache=True, nogil=True)`` when numba is present.

    Without numba the function is returned unchanged, with ``py_func`` pointing at
    itself so callers and tests can use one attribute either way.
    """
    if _numba is None:
        fn.py_func = fn  # type: ignore[attr-defined]
        return fn
    return _numba.njit(cache=True, nogil=True)(fn)  # type: ignore[return-value]
