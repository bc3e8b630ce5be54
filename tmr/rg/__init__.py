"""RG coarse-graining: spectral schemes (PCA, eNTK, conjugate kernel, Fisher), block
schemes (majority, decimation, spanning, mean; tree-aligned sequence blocks) and
phenomenological RG, all behind one ``scheme(representation, scale) -> CoarseGrained``
interface with flows over a ladder of scales (background.md §4)."""

from tmr.rg.base import CoarseGrained, FlowResult, Scheme, run_flow
from tmr.rg.block import (
    BlockScheme,
    block_flow_table,
    block_lattice,
    block_sequence,
    density,
    fit_rg_map,
    fixed_point,
    ising_decimation,
    linearised_exponent,
    majority_map,
    measure_rg_map,
    nn_correlation,
    spanning_map_2x2,
    spanning_probability,
)
from tmr.rg.jacobian import (
    bayesian_renormalisation,
    empirical_ntk,
    fisher_eigen,
    fisher_matrix,
    fisher_rows,
    flat_params,
    jacobian_blocks,
)
from tmr.rg.phenomenological import PhenomenologicalScheme, phenomenological_rg
from tmr.rg.spectral import (
    KernelScheme,
    PCAScheme,
    conjugate_kernel,
    faithfulness_curve,
    model_forward,
    project_top_k,
    ridge_probe_accuracy,
    selectivity_scorer,
)
from tmr.rg.spectrum import (
    alignment_relevance,
    cutoff_for_budget,
    eigh_desc,
    power_law_fit,
    spectral_gaps,
    tail_fraction,
)

__all__ = [
    "BlockScheme", "CoarseGrained", "FlowResult", "KernelScheme", "PCAScheme",
    "PhenomenologicalScheme", "Scheme", "alignment_relevance", "bayesian_renormalisation",
    "block_flow_table", "block_lattice", "block_sequence", "conjugate_kernel",
    "cutoff_for_budget", "density",
    "eigh_desc", "empirical_ntk", "faithfulness_curve", "fisher_eigen", "fisher_matrix",
    "fisher_rows", "fit_rg_map", "fixed_point", "flat_params", "ising_decimation",
    "jacobian_blocks", "linearised_exponent", "majority_map", "measure_rg_map",
    "model_forward", "nn_correlation", "phenomenological_rg", "power_law_fit",
    "project_top_k", "ridge_probe_accuracy", "run_flow", "selectivity_scorer", "spanning_map_2x2",
    "spanning_probability", "spectral_gaps", "tail_fraction",
]
