"""Separation-of-scales bounds (background.md §5).

- :mod:`tmr.bounds.core`: the bounds themselves (certified CROWN and Lipschitz upper
  bounds, the projected-gradient lower bound, observables, subspaces);
- :mod:`tmr.bounds.run`: the same on a trained run's activations, the table and plot
  behind ``tmr bound``.

Every public name of both modules is importable from here (``from tmr import bounds as
B; B.bound(...)``).
"""

from tmr.bounds.core import (
    ATTACK_RESTARTS,
    ATTACK_STEPS,
    CHUNK,
    KINDS,
    ORTHONORMAL_TOL,
    ROUND_SLACK,
    BoundResult,
    Observable,
    Separation,
    attack,
    bound,
    check_basis,
    check_eps,
    class_logit,
    complement,
    loss,
    margin,
    natural_scale,
    pca_split,
    probe,
    resolve_tail,
    separation,
    table,
    variance_fraction,
)
from tmr.bounds.run import (
    COLUMNS,
    NATURAL,
    SCHEMES,
    bound_run,
    parse_eps,
    parse_observable,
    resolve_eps,
    save,
    site_activations,
)

__all__ = [
    "ATTACK_RESTARTS",
    "ATTACK_STEPS",
    "CHUNK",
    "COLUMNS",
    "KINDS",
    "NATURAL",
    "ORTHONORMAL_TOL",
    "ROUND_SLACK",
    "SCHEMES",
    "BoundResult",
    "Observable",
    "Separation",
    "attack",
    "bound",
    "bound_run",
    "check_basis",
    "check_eps",
    "class_logit",
    "complement",
    "loss",
    "margin",
    "natural_scale",
    "parse_eps",
    "parse_observable",
    "pca_split",
    "probe",
    "resolve_eps",
    "resolve_tail",
    "save",
    "separation",
    "site_activations",
    "table",
    "variance_fraction",
]
