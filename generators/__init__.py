"""Hierarchical data with every latent level (numpy, scipy, networkx only).

Each generator follows one protocol (see :mod:`generators.base`)::

    world = generators.rhm.make_world(vocab_size=8, n_classes=8, n_synonyms=2,
                                      tuple_size=2, n_levels=3, rng=0)
    s = generators.rhm.sample(world, 1000, rng=1)
    s.x, s.levels, s.level_names

and is listed in :data:`REGISTRY` by name.
"""

from generators import ifs, percolation, percolation_mf, rhm
from generators._rng import as_generator, as_seed_sequence, stream, streams
from generators.base import GeneratorSpec, HierarchicalSample, concat

#: name -> (config dataclass, module)
REGISTRY: dict[str, GeneratorSpec] = {
    "rhm": GeneratorSpec("rhm", rhm.Config, rhm),
    "percolation": GeneratorSpec("percolation", percolation.Config, percolation),
    "percolation_mf": GeneratorSpec("percolation_mf", percolation_mf.Config, percolation_mf),
    "ifs": GeneratorSpec("ifs", ifs.Config, ifs),
}

__all__ = [
    "REGISTRY",
    "GeneratorSpec",
    "HierarchicalSample",
    "as_generator",
    "as_seed_sequence",
    "concat",
    "ifs",
    "percolation",
    "percolation_mf",
    "rhm",
    "stream",
    "streams",
]
