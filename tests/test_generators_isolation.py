"""`generators` stands alone: numpy, scipy and networkx, never torch or typer.

numba is optional: with it blocked, every generator still imports and samples, and the
kernels run as plain Python.
"""

import subprocess
import sys

SCRIPT = r"""
import sys
sys.modules["numba"] = None  # an import of numba now raises ImportError
import generators
from generators import _jit
assert not _jit.HAVE_NUMBA
for name, spec in generators.REGISTRY.items():
    assert spec.module.make_world and spec.module.sample, name
s = generators.rhm.sample(generators.rhm.make_world(vocab_size=4, n_classes=4,
    n_synonyms=2, tuple_size=2, n_levels=2, rng=0), 8, rng=1)
assert s.x.shape[0] == 8
banned = sorted(m for m in ("torch", "typer", "numba") if sys.modules.get(m) is not None)
assert not banned, banned
print("ok")
"""


def test_generators_import_without_numba_torch_or_typer() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
