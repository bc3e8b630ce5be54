"""Families load lazily: importing one never imports numba, torch or another family.

Each check runs in a fresh interpreter (``sys.modules`` of this one already holds
everything the other tests imported).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FAMILIES = ["rhm", "pcfg", "percolation", "percolation_mf", "ifs"]


def loaded_after(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; return what it left in ``result``."""
    script = code + "\nimport json, sys\nprint(json.dumps(result))\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


PROBE = """
import sys
def present(prefixes):
    return sorted(m for m in sys.modules if sys.modules[m] is not None
                  and any(m == p or m.startswith(p + ".") for p in prefixes))
HEAVY = ["numba", "torch", "typer", "matplotlib", "h5py"]
FAMILY_MODULES = ["generators.pcfg", "generators.percolation", "generators.percolation_mf",
                  "generators.ifs", "generators.rhm"]
"""


def test_import_generators_imports_no_family_and_no_numba() -> None:
    r = loaded_after(PROBE + "import generators\n"
                     "result = {'heavy': present(HEAVY), 'families': present(FAMILY_MODULES)}")
    assert r == {"heavy": [], "families": []}


def test_import_rhm_imports_no_other_family_numba_or_torch() -> None:
    r = loaded_after(PROBE + "import generators.rhm\n"
                     "result = {'heavy': present(HEAVY), 'families': present(FAMILY_MODULES)}")
    assert r == {"heavy": [], "families": ["generators.rhm"]}


def test_registry_lists_every_family_without_importing_one() -> None:
    r = loaded_after(PROBE + "import generators\n"
                     "names = sorted(generators.REGISTRY)\n"
                     "has = 'pcfg' in generators.REGISTRY and len(generators.REGISTRY) == 5\n"
                     "result = {'names': names, 'has': has, 'families': present(FAMILY_MODULES),"
                     " 'loaded': generators.REGISTRY.loaded()}")
    assert r == {"names": sorted(FAMILIES), "has": True, "families": [], "loaded": []}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_attribute_imports_that_family_only(family: str) -> None:
    r = loaded_after(PROBE + "import generators\n"
                     f"spec = generators.REGISTRY[{family!r}]\n"
                     f"mod = getattr(generators, {family!r})\n"
                     "assert spec.module is mod and spec.config is mod.Config\n"
                     "assert callable(mod.make_world) and callable(mod.sample)\n"
                     "result = {'heavy': present(HEAVY), 'loaded': generators.REGISTRY.loaded(),"
                     " 'families': present(FAMILY_MODULES)}")
    assert r["heavy"] == []  # kernels compile on first call, not on import
    assert r["loaded"] == [family]
    # what a family may import of the others: the PCFG's "rhm" preset builds the grammar
    # of an RHM world; the mean-field family lives in the percolation package
    allowed = {"pcfg": ("generators.rhm",), "percolation_mf": ("generators.percolation",)}
    own = (f"generators.{family}", *allowed.get(family, ()))
    foreign = [m for m in r["families"]
               if not any(m == o or m.startswith(o + ".") for o in own)]
    assert foreign == []


def test_kernels_import_numba_on_first_call_only() -> None:
    r = loaded_after(PROBE + "from generators import _jit, percolation\n"
                     "before = present(['numba'])\n"
                     "w = percolation.make_world(lattice='square', size=8, ps=[0.5], rng=0)\n"
                     "percolation.sample(w, 2, rng=1)\n"
                     "result = {'before': before, 'after': bool(present(['numba'])),"
                     " 'have': _jit.HAVE_NUMBA}")
    assert r["before"] == []
    assert r["after"] == r["have"]


def test_old_names_still_resolve() -> None:
    r = loaded_after("import generators, generators.percolation_mf as a\n"
                     "from generators import percolation_mf as b, pcfg\n"
                     "from generators.percolation import mean_field as c\n"
                     "result = [a is b is c is generators.percolation_mf,"
                     " callable(pcfg.sample), hasattr(a, 'Config')]")
    assert r == [True, True, True]


KERNELS = '''
import numpy as np
from generators._jit import jit

@jit
def inner(x):
    return 2 * x

@jit
def outer(a):
    s = 0
    for v in a:
        s += inner(v)
    return s
'''


def test_a_kernel_calling_a_kernel_compiles_on_first_call(tmp_path) -> None:
    (tmp_path / "two_kernels.py").write_text(KERNELS)
    r = loaded_after(f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\n"
                     "import numpy as np, two_kernels as k\n"
                     "from generators import _jit\n"
                     "lazy = [type(k.inner).__name__, type(k.outer).__name__]\n"
                     "got = int(k.outer(np.arange(5)))\n"
                     "plain = int(k.outer.py_func(np.arange(5)))\n"
                     "rebound = type(k.inner).__name__ != 'LazyKernel'\n"
                     "result = {'lazy': lazy, 'got': got, 'plain': plain, "
                     "'rebound': rebound, 'have': _jit.HAVE_NUMBA}")
    assert r["lazy"] == ["LazyKernel", "LazyKernel"]  # nothing compiled at import
    assert r["got"] == r["plain"] == 2 * sum(range(5))
    assert r["rebound"] == r["have"]  # the callee became a numba dispatcher when compiled
