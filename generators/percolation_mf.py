"""Mean-field (Bethe-lattice) percolation: :mod:`generators.percolation.mean_field`.

The family keeps its registry name and import path (``import generators.percolation_mf``,
``from generators import percolation_mf``); this module is that implementation module
under the old name: importing it binds the same module object, so attributes set on
one are seen through the other.
"""

import sys

from generators.percolation import mean_field as _impl
from generators.percolation.mean_field import *  # noqa: F403  (names for type checkers)

sys.modules[__name__] = _impl
