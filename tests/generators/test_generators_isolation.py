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
# every generator samples without numba (kernels as plain Python or the numpy paths)
from generators import ifs, pcfg, percolation, percolation_mf
from generators.pcfg import soft as pcfg_soft
w = percolation.make_world(lattice="square", size=8, ps=[0.4, 0.6], rng=0)
assert percolation.sample(w, 3, rng=1).levels[0].shape == (3, 8, 8)
w = percolation.make_world(lattice="square", size=6, ps=[0.5], kind="bond",
                           boundary="periodic", rng=0)
assert percolation.sample(w, 2, rng=1).levels[0].shape == (2, 6, 6)
w = percolation_mf.make_world(max_cluster_size=50, n_levels=3, rng=0)
assert percolation_mf.sample(w, 200, rng=1).x.shape == (200, 2)
w = ifs.make_world(system="sierpinski")
assert ifs.sample(w, 100, rng=1, depth=6).x.shape == (100, 2)
img = ifs.sample(w, 2, rng=1, mode="images", image_size=32, n_points=2000)
assert img.x.shape == (2, 32, 32)
g = pcfg.make_world(preset="layered", params={"symbols_per_level": [1, 2, 2]}, rng=2)
s = pcfg.sample(g, 5, rng=0, soft_levels=True)
assert s.aux["posterior_depth1"].shape[0] == 5
banned = sorted(m for m in ("torch", "typer", "numba") if sys.modules.get(m) is not None)
assert not banned, banned
print("ok")
"""


def test_generators_import_without_numba_torch_or_typer() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
