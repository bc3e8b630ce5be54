"""Layer metrics beyond probes (definitions in the project's background notes, section 3).

Pure functions of a layer's activations ``h`` ``(n_samples, d)`` (float64) and,
where needed, latent labels or inputs. Each docstring states the formula it
computes, its reference and its estimator caveats.

=====================  ====================================================
information            knn_mi_discrete, ksg_mi, probe_mi_bound, binned_mi,
                       binned_mi_input, input_mi_discrete
collapse               nc1, rnc1, nc2, separation_he_su
rank                   jacobian_rank, numerical_rank, effective_rank,
                       participation_ratio
intrinsic_dim          twonn
similarity             linear_cka, cka_onehot, rsa_tree, tree_distance
sensitivity            relative_change, synonym_sensitivity,
                       synonymic_sensitivity
claims                 monotone_trend, geometric_fit, paper000_claims
=====================  ====================================================
"""

from tmr.metrics._common import level_labels
from tmr.metrics.claims import geometric_fit, monotone_trend, paper000_claims
from tmr.metrics.collapse import class_stats, nc1, nc2, rnc1, separation_he_su
from tmr.metrics.information import (
    binned_mi,
    binned_mi_input,
    input_mi_discrete,
    knn_mi_discrete,
    knn_mi_discrete_levels,
    ksg_mi,
    plugin_mi,
    probe_mi_bound,
)
from tmr.metrics.intrinsic_dim import twonn
from tmr.metrics.rank import (
    effective_rank,
    jacobian_rank,
    jacobian_singular_values,
    numerical_rank,
    participation_ratio,
)
from tmr.metrics.sensitivity import (
    relative_change,
    synonym_sensitivity,
    synonymic_sensitivity,
)
from tmr.metrics.similarity import cka_onehot, linear_cka, rsa_tree, tree_distance

__all__ = [
    "binned_mi",
    "binned_mi_input",
    "cka_onehot",
    "class_stats",
    "effective_rank",
    "geometric_fit",
    "input_mi_discrete",
    "jacobian_rank",
    "jacobian_singular_values",
    "knn_mi_discrete",
    "knn_mi_discrete_levels",
    "ksg_mi",
    "level_labels",
    "linear_cka",
    "monotone_trend",
    "nc1",
    "nc2",
    "numerical_rank",
    "paper000_claims",
    "participation_ratio",
    "plugin_mi",
    "probe_mi_bound",
    "relative_change",
    "rnc1",
    "rsa_tree",
    "separation_he_su",
    "synonym_sensitivity",
    "synonymic_sensitivity",
    "tree_distance",
    "twonn",
]
