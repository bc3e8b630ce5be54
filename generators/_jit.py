"""Optional compilation of the generators' inner loops with numba, on first call.

A few loops have no fast numpy form: union-find over a lattice, a chaos game that
scatters points into address maps, dynamic programming over spans, level-by-level tree
growth with data-dependent lengths. They are written once, as plain Python functions
over numpy arrays, and decorated with :func:`jit`.

Decorating costs nothing: numba is imported, and the kernel compiled (or loaded from
numba's on-disk cache), the first time the kernel is *called*, so importing a family
never imports numba. With numba installed (a dependency of the ``tmr`` distribution)
the compiled kernel then runs as machine code. Without numba, ``import generators``
still needs only numpy, scipy and networkx: the same functions run as ordinary Python,
giving identical results far more slowly. Kernels never draw random numbers
themselves: their random inputs are arrays drawn by the caller from an explicit
:class:`numpy.random.Generator`, so a seed gives the same bytes with or without numba.
``kernel.py_func`` is the uncompiled function (the tests run both and compare).

A kernel that calls another kernel finds it as a global of its module; before a kernel
compiles, every lazy kernel among its globals is compiled first and the module global
is rebound to the compiled dispatcher, which is what numba needs to type the call.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def _numba_findable() -> bool:
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # pragma: no cover - a broken or blocked install
        return False


#: True when kernels are compiled; False when they run as plain Python. Decided without
#: importing numba (it is found on the path, or blocked with ``sys.modules["numba"] =
#: None``); set to False if the import fails when the first kernel compiles.
HAVE_NUMBA = _numba_findable()

_LOCK = threading.RLock()


def _numba() -> Any:
    """The numba module, imported on first use (None when it is missing or broken)."""
    global HAVE_NUMBA
    if not HAVE_NUMBA:
        return None
    try:
        import numba
    except ImportError:  # pragma: no cover - findable but not importable
        HAVE_NUMBA = False
        return None
    return numba


class LazyKernel:
    """A kernel compiled with ``numba.njit(cache=True, nogil=True)`` on its first call.

    ``py_func`` is the plain Python function; :meth:`compiled` returns the dispatcher
    (or ``py_func`` without numba). Calling the object calls the compiled kernel.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.py_func = fn
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self.__wrapped__ = fn
        self._compiled: Callable[..., Any] | None = None

    def compiled(self) -> Callable[..., Any]:
        """Compile (once) and return the callable that runs the kernel."""
        if self._compiled is not None:
            return self._compiled
        with _LOCK:
            if self._compiled is None:
                numba = _numba()
                if numba is None:
                    self._compiled = self.py_func
                else:
                    g = self.py_func.__globals__
                    for name in self.py_func.__code__.co_names:  # callees first
                        dep = g.get(name)
                        if isinstance(dep, LazyKernel) and dep is not self:
                            g[name] = dep.compiled()
                    self._compiled = numba.njit(cache=True, nogil=True)(self.py_func)
                    if g.get(self.__name__) is self:  # later calls skip this wrapper
                        g[self.__name__] = self._compiled
        return self._compiled

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = self._compiled if self._compiled is not None else self.compiled()
        return fn(*args, **kwargs)

    def __repr__(self) -> str:
        state = "compiled" if self._compiled is not None else "not compiled yet"
        return f"<kernel {self.__module__}.{self.__qualname__} ({state})>"


def jit(fn: F) -> F:
    """Mark ``fn`` as a kernel: compiled by numba on its first call when numba is present.

    Without numba the kernel runs ``fn`` unchanged; either way ``kernel.py_func`` is the
    plain function, so callers and tests can use one attribute.
    """
    return LazyKernel(fn)  # type: ignore[return-value]
