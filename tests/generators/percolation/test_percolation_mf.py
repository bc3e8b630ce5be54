"""Mean-field percolation point clouds: uniform trees (Cayley counts, degree law),
the n_s ~ s^(-5/2) size law and its cutoff, the binary subcluster hierarchy, size
nesting, the ancestor matrix, bad input, and the shipped percolation configs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from generators import concat
from generators import percolation_mf as M


def _trees(size: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.full(k, size)
    children = M.uniform_trees(sizes, np.random.default_rng(seed))
    return children, M.parents_from_children(children, sizes)


def _degrees(children: np.ndarray, parent: np.ndarray) -> np.ndarray:
    return children + (parent >= 0)


@pytest.mark.parametrize(("size", "shape_counts"), [
    (4, {3: 4, 2: 12}),  # max degree -> number of labelled trees: star 4, path 12 (4^2 = 16)
    (5, {4: 5, 3: 60, 2: 60}),  # star 5, "chair" 60, path 60 (5^3 = 125)
])
def test_trees_are_uniform_over_cayley_trees(size, shape_counts):
    k = 20000
    children, parent = _trees(size, k, seed=size)
    assert np.all((parent >= 0).reshape(k, size).sum(axis=1) == size - 1)
    max_deg = _degrees(children, parent).reshape(k, size).max(axis=1)
    total = sum(shape_counts.values())
    observed = np.array([(max_deg == d).sum() for d in shape_counts])
    expected = np.array([k * c / total for c in shape_counts.values()])
    assert observed.sum() == k
    # chi^2 goodness of fit; p > 0.001 fails a correct sampler once in a thousand seeds
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_vertex_degree_law_is_one_plus_poisson_one():
    children, parent = _trees(2000, 100, seed=1)
    deg = _degrees(children, parent)
    ks = np.arange(1, 7)
    observed = np.array([(deg == k).sum() for k in ks] + [(deg >= 7).sum()])
    probs = stats.poisson.pmf(ks - 1, 1.0)
    probs = np.append(probs, 1 - probs.sum())
    # 1 + Binomial(s-2, 1/s) differs from 1 + Poisson(1) by O(1/s) = 5e-4 per cell
    assert stats.chisquare(observed, probs * deg.size).pvalue > 1e-3


def test_parents_come_before_children_and_trees_are_connected():
    s = M.sample(M.make_world(), 5000, rng=0)
    parent, idx = s.aux["parent"], np.arange(len(s))
    assert np.all(parent < idx)
    roots = parent < 0
    assert np.array_equal(s.levels[0][parent[~roots]], s.levels[0][~roots])
    assert np.all(s.aux["depth"][roots] == 0)
    assert np.array_equal(s.aux["depth"][~roots], s.aux["depth"][parent[~roots]] + 1)


def test_cluster_size_exponent_is_five_halves_at_criticality():
    world = M.make_world(branching=1.0, max_cluster_size=10**6)
    sizes = M.draw_cluster_sizes(world, 10**6, rng=4)
    xmin = 10
    tail = sizes[sizes >= xmin].astype(float)
    tau = 1 + tail.size / np.sum(np.log(tail / (xmin - 0.5)))  # discrete power-law MLE
    # ~3e4 clusters above xmin: std (tau-1)/sqrt(n) ~ 0.01; the O(1/s) Stirling
    # correction of the Borel law at s >= 10 biases the MLE by < 0.02
    assert abs(tau - 2.5) < 0.07, tau


def test_off_critical_law_has_cutoff_s_star():
    s = np.arange(1, 401)
    crit = M.cluster_number_law(1.0, 400)
    for lam in (0.8, 1.25):
        law = M.cluster_number_law(lam, 400)
        s_star = M.make_world(branching=lam).cutoff
        slope = np.polyfit(s, np.log(law / crit), 1)[0]
        # log(P_lam(s)/P_1(s)) = -s (lam - 1 - ln lam) - ln lam exactly
        assert np.isclose(slope, -1 / s_star)
    assert M.make_world(branching=1.0).cutoff == math.inf
    assert np.isclose(M.make_world(branching=0.9).cutoff, 1 / (0.9 - 1 - np.log(0.9)))


def test_subclusters_are_nested_binary_and_connected():
    world = M.make_world(n_levels=5)
    s = M.sample(world, 20000, rng=2)
    parent = s.aux["parent"]
    nonroot = parent >= 0
    for l in range(1, len(s.levels)):
        fine, coarse = s.levels[l], s.levels[l - 1]
        assert np.array_equal(fine // 2, coarse)  # binary split of the parent subcluster
        # a subcluster is a subtree: its points minus its internal edges is 1
        ids, n_points = np.unique(fine, return_counts=True)
        same = nonroot.copy()
        same[nonroot] = fine[parent[nonroot]] == fine[nonroot]
        internal = np.bincount(np.searchsorted(ids, fine[same]), minlength=ids.size)
        last = fine[-1]  # the last cluster may be cut by n_samples
        keep = ids != last
        assert np.all((n_points - internal)[keep] == 1)


def test_larger_draw_has_smaller_as_prefix_and_chunks_agree():
    world = M.make_world(max_cluster_size=3000)
    small = M.sample(world, 3000, rng=8)
    big = M.sample(world, 40000, rng=8)
    chunks = concat(list(M.iter_chunks(world, 40000, rng=8, chunk_size=7000)))
    for a, b, c in zip((small.x, *small.levels, *small.aux.values()),
                       (big.x, *big.levels, *big.aux.values()),
                       (chunks.x, *chunks.levels, *chunks.aux.values()), strict=True):
        assert np.array_equal(a, b[:3000])
        assert np.array_equal(b, c)
    assert not np.array_equal(M.sample(world, 3000, rng=9).x, small.x)


def test_random_walk_steps_and_targets():
    world = M.make_world(step_scale=2.0, n_levels=3)
    s = M.sample(world, 50000, rng=5)
    nonroot = s.aux["parent"] >= 0
    steps = s.x[nonroot].astype(np.float64) - s.x[s.aux["parent"][nonroot]]
    # ~4e4 Gaussian steps of variance 4: the sample variance is within 2% (4 sigma)
    assert np.allclose(steps.var(axis=0), 4.0, rtol=0.04)
    assert np.allclose(steps.mean(axis=0), 0.0, atol=0.05)
    finest = s.levels[-1]
    order = np.argsort(finest, kind="stable")
    same = finest[order][1:] == finest[order][:-1]
    # the target is a sum over the latent path, constant inside the finest subcluster
    assert np.allclose(np.diff(s.aux["target"][order])[same], 0.0)


def test_kernels_equal_their_python_functions(monkeypatch):
    world = M.make_world(n_levels=5, dim=3, max_cluster_size=500)
    compiled = M.sample(world, 4000, rng=6)
    for name in ("_split_round", "_forward_sums"):
        monkeypatch.setattr(M, name, getattr(M, name).py_func)
    python = M.sample(world, 4000, rng=6)
    for a, b in zip((compiled.x, *compiled.levels, *compiled.aux.values()),
                    (python.x, *python.levels, *python.aux.values()), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_ancestor_matrix_has_one_entry_per_point_and_level():
    s = M.sample(M.make_world(n_levels=4), 3000, rng=1)
    mat, nodes = M.ancestor_matrix(s)
    assert mat.format == "csr" and mat.shape == (3000, nodes.shape[0])
    assert np.all(mat.sum(axis=1) == 5)
    row = mat[[10]].indices
    assert [tuple(nodes[c]) for c in row] == [(l, s.levels[l][10]) for l in range(5)]


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(branching=0.0), "branching"), (dict(branching=-1.0), "branching"),
    (dict(n_levels=99), "n_levels"), (dict(dim=0), "dim"),
    (dict(max_cluster_size=0), "max_cluster_size"), (dict(step_scale=float("nan")), "step"),
])
def test_bad_input_raises_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        M.make_world(**kwargs)


@pytest.mark.parametrize("name", ["percolation_square", "percolation_ladder", "percolation_mf"])
def test_shipped_configs_build_a_world_and_sample(name):
    from pathlib import Path

    from tmr.config import load_data_config

    cfg = load_data_config(Path(__file__).parents[3] / "configs" / f"{name}.toml")
    world = cfg.spec.make_world(cfg.generator, rng=cfg.seed)
    s = cfg.spec.sample(world, cfg.generator, 3, rng=cfg.seed)
    assert len(s) == 3 and len(s.levels) == len(s.level_names) >= 2
