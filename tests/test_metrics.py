"""Known answers of the layer metrics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import tmr.metrics as M
from generators import rhm
from tmr.metrics.collapse import _between


def _orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))  # (d, d) Haar orthogonal


def _balanced(n_per: int, n_classes: int) -> np.ndarray:
    return np.repeat(np.arange(n_classes), n_per)  # (n_per * n_classes,)


def _rhm_sample(n: int = 1200, seed: int = 1):
    world = rhm.make_world(vocab_size=8, n_classes=4, n_synonyms=2, tuple_size=2,
                           n_levels=3, rng=0)
    return rhm.sample(world, n, rng=seed)


def _onehot_paths(levels) -> np.ndarray:
    blocks = []
    for lv in levels:
        ids = M.level_labels(lv)
        blocks.append(np.eye(int(ids.max()) + 1)[ids])
    return np.concatenate(blocks, axis=1)  # (n, sum of level alphabet sizes)


# ---------------------------------------------------------------- neural collapse

def test_collapsed_features_have_zero_nc1_and_rnc1():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 600)
    h = rng.normal(size=(5, 12))[y] * 3.0  # (600, 12): every sample on its class mean
    assert abs(M.nc1(h, y)) < 1e-12
    assert abs(M.rnc1(h, y)) < 1e-12


def test_isotropic_noise_gives_nc1_sigma2_trace_pinv_sigma_b_over_c():
    rng = np.random.default_rng(1)
    c, d, sigma = 4, 10, 0.5
    y = _balanced(1000, c)
    h = rng.normal(size=(c, d))[y] * 2.0 + sigma * rng.normal(size=(len(y), d))
    expected = sigma**2 * np.trace(np.linalg.pinv(_between(M.class_stats(h, y), "classes"))) / c
    # NC1 averages the within-class variance over the C-1 = 3 between-class
    # directions: relative std ~ sqrt(2 / (3 n)) = 1.3% at n = 4000; 5% is ~4 sigma
    assert M.nc1(h, y) == pytest.approx(expected, rel=0.05)


def test_simplex_etf_class_means_give_zero_nc2():
    rng = np.random.default_rng(2)
    c, d = 5, 16
    etf = np.sqrt(c / (c - 1)) * (np.eye(c) - 1.0 / c)  # (C, C) simplex ETF
    means = 7.0 * etf @ _orthogonal(d, rng)[:c] + rng.normal(size=d)  # rotated, scaled, shifted
    y = _balanced(30, c)
    h = means[y] + 0.0 * rng.normal(size=(len(y), d))
    nc2 = M.nc2(h, y)
    for key, value in nc2.items():
        assert abs(value) < 1e-12, key


def test_random_class_means_are_far_from_etf():
    rng = np.random.default_rng(3)
    y = _balanced(30, 5)
    assert M.nc2(rng.normal(size=(5, 3))[y], y)["etf_distance"] > 0.1


def test_balanced_classes_give_separation_c_times_nc1_for_both_weightings():
    rng = np.random.default_rng(4)
    c = 6
    y = _balanced(200, c)
    h = rng.normal(size=(c, 20))[y] + rng.normal(size=(len(y), 20))
    d_samples = M.separation_he_su(h, y, weighting="samples")
    d_classes = M.separation_he_su(h, y, weighting="classes")
    assert d_samples == pytest.approx(c * M.nc1(h, y), rel=1e-10)
    assert d_classes == pytest.approx(d_samples, rel=1e-10)


def test_separation_weightings_differ_for_imbalanced_classes():
    rng = np.random.default_rng(5)
    y = np.concatenate([np.zeros(900, int), np.ones(50, int), np.full(50, 2)])
    h = rng.normal(size=(3, 8))[y] + rng.normal(size=(len(y), 8))
    assert M.separation_he_su(h, y) != pytest.approx(
        M.separation_he_su(h, y, weighting="classes"), rel=1e-3)


# ---------------------------------------------------------------- information

@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_gaussian_pairs_give_ksg_mi_minus_half_log_one_minus_rho2_per_dimension(rho):
    dims, values = 2, []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        a = rng.normal(size=(1500, dims))
        b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=(1500, dims))
        values.append(M.ksg_mi(a, b))
    expected = -0.5 * dims * np.log(1 - rho**2)
    # KSG std at n = 1500 is ~0.02 per estimate (0.01 for the mean of 4) and its
    # bias in 4 joint dimensions is a few hundredths of a nat; 0.05 + 5% covers both
    assert np.mean(values) == pytest.approx(expected, abs=0.05 + 0.05 * expected)


def test_knn_mi_of_separated_classes_is_log_c():
    rng = np.random.default_rng(6)
    c = 4
    y = rng.integers(0, c, 1500)
    h = 50.0 * np.eye(c)[y] + rng.normal(size=(len(y), c))
    # each point's neighbours within radius d are all of its own class, so
    # psi(k) - psi(m) = 0 exactly and I = psi(N) - <psi(N_y)> = log C + O(C / N)
    assert M.knn_mi_discrete(h, y) == pytest.approx(np.log(c), abs=0.01)


def test_knn_mi_of_independent_labels_is_near_zero():
    rng = np.random.default_rng(7)
    values = [M.knn_mi_discrete(rng.normal(size=(1500, 3)), rng.integers(0, 4, 1500))
              for _ in range(3)]
    # the estimator's spread at n = 1500, k = 3 is ~0.02 nats; 0.05 bounds |mean|
    assert abs(np.mean(values)) < 0.05


def test_knn_mi_levels_matches_single_level_calls():
    rng = np.random.default_rng(8)
    h = rng.normal(size=(400, 5))
    ys = [rng.integers(0, 3, 400), rng.integers(0, 7, 400)]
    h[:, 0] += 3 * ys[0]
    joint = M.knn_mi_discrete_levels(h, ys)
    single = [M.knn_mi_discrete(h, y) for y in ys]
    # dedup on (h, all labels) and (h, one label) agree here: no repeated rows
    assert joint == pytest.approx(single, abs=1e-12)


def test_probe_bound_is_entropy_for_perfect_probe_and_zero_for_uniform_probe():
    y = np.repeat(np.arange(4), 25)
    perfect = np.log(np.eye(4)[y] * (1 - 1e-300) + 1e-300)  # (100, 4) log-probabilities
    uniform = np.full((100, 4), -np.log(4))
    assert M.probe_mi_bound(y, log_probs=perfect) == pytest.approx(np.log(4), abs=1e-12)
    assert M.probe_mi_bound(y, log_probs=uniform) == pytest.approx(0.0, abs=1e-12)
    assert M.probe_mi_bound(y, ce=np.log(4)) == pytest.approx(0.0, abs=1e-12)


def test_binning_with_fine_bins_gives_log_n_distinct():
    rng = np.random.default_rng(9)
    h = rng.normal(size=(500, 4))
    x = np.arange(500)
    assert M.binned_mi_input(h, x, n_bins=100_000) == pytest.approx(np.log(500), abs=1e-12)
    # with one bin, T is constant and carries nothing
    assert M.binned_mi_input(h, x, n_bins=1) == pytest.approx(0.0, abs=1e-12)


def test_binned_mi_with_fine_bins_reaches_label_entropy():
    rng = np.random.default_rng(10)
    y = _balanced(50, 4)
    h = rng.normal(size=(200, 3))
    assert M.binned_mi(h, y, n_bins=100_000) == pytest.approx(np.log(4), abs=1e-12)


def test_input_mi_is_log_n_distinct_for_injective_and_zero_for_constant_layer():
    rng = np.random.default_rng(11)
    x = rng.integers(0, 3, size=(300, 6))  # discrete inputs with repeats
    n_distinct = len(np.unique(x, axis=0))
    counts = np.unique(x, axis=0, return_counts=True)[1]
    p = counts / counts.sum()
    injective = x @ (3.0 ** np.arange(6))[:, None]  # (300, 1): base-3 code
    assert M.input_mi_discrete(injective, x) == pytest.approx(-(p * np.log(p)).sum(), abs=1e-12)
    xd = np.unique(x, axis=0)  # distinct, equally frequent inputs
    assert M.input_mi_discrete(xd.astype(float), xd) == pytest.approx(np.log(n_distinct))
    assert M.input_mi_discrete(np.ones((300, 4)), x) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- rank

def test_linear_network_jacobian_rank_equals_narrowest_width():
    torch.manual_seed(0)
    widths = (20, 30, 7, 25, 12)
    net = torch.nn.Sequential(*[torch.nn.Linear(a, b) for a, b in itertools.pairwise(widths)])
    x = np.random.default_rng(12).normal(size=(6, widths[0]))
    assert np.all(M.jacobian_rank(net.double(), x) == min(widths))


def test_jacobian_rank_counts_singular_values_above_eps_times_norm():
    s = np.array([[10.0, 1.0, 1e-2, 9e-3, 0.0]])
    assert M.numerical_rank(s, eps=1e-4)[0] == 4  # threshold 1e-3
    assert M.numerical_rank(s, eps=1e-2)[0] == 2  # 1e-2 * 10 = 0.1: only 10 and 1 count


def test_effective_rank_and_participation_ratio_of_r_equal_directions_are_r():
    rng = np.random.default_rng(13)
    r, d = 5, 30
    basis = _orthogonal(d, rng)[:r]  # (r, d)
    signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * r)).reshape(r, -1).T  # (2^r, r)
    h = signs @ basis  # (32, d): isotropic in r directions, zero mean
    assert M.effective_rank(h) == pytest.approx(r, rel=1e-10)
    assert M.participation_ratio(h) == pytest.approx(r, rel=1e-10)


# ---------------------------------------------------------------- intrinsic dimension

@pytest.mark.parametrize("d", [1, 2, 5, 10])
def test_twonn_recovers_dimension_of_gaussian_embedded_in_r50(d):
    rng = np.random.default_rng(14 + d)
    z = np.zeros((2000, 50))
    z[:, :d] = rng.normal(size=(2000, d))
    h = z @ _orthogonal(50, rng)  # rotate out of the coordinate axes
    # the acceptance criterion; the estimator's std at n = 2000 is ~d/sqrt(n) ~ 2%
    assert M.twonn(h) == pytest.approx(d, rel=0.10)
    assert M.twonn(h, method="mle") == pytest.approx(d, rel=0.10)


# ---------------------------------------------------------------- similarity

def test_cka_invariant_to_scale_and_rotation():
    rng = np.random.default_rng(15)
    x = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))
    y = -2.5 * x @ _orthogonal(12, rng) + 4.0  # a X Q plus a shift
    assert M.linear_cka(x, y) == pytest.approx(1.0, abs=1e-12)
    assert M.linear_cka(x, y, unbiased=False) == pytest.approx(1.0, abs=1e-12)


def test_unbiased_cka_of_independent_data_is_near_zero_where_biased_is_not():
    rng = np.random.default_rng(16)
    x, y = rng.normal(size=(500, 50)), rng.normal(size=(500, 50))
    # unbiased: mean 0, spread ~ 1/n; biased: ~ d / (d + n) = 0.09 here
    assert abs(M.linear_cka(x, y)) < 0.01
    assert M.linear_cka(x, y, unbiased=False) > 0.05


def test_cka_onehot_matches_dense_onehot_cka():
    rng = np.random.default_rng(17)
    y = rng.integers(0, 6, 300)
    h = rng.normal(size=(300, 9)) + np.eye(6, 9)[y]
    for unbiased in (True, False):
        assert M.cka_onehot(h, y, unbiased=unbiased) == pytest.approx(
            M.linear_cka(h, np.eye(6)[y], unbiased=unbiased), abs=1e-12)


def test_tree_distance_is_an_ultrametric_with_root_split_at_n_levels():
    sample = _rhm_sample(60)
    n = len(sample)
    full = np.zeros((n, n))
    full[np.triu_indices(n, 1)] = M.tree_distance(sample.levels)
    full = full + full.T
    triple = np.maximum(full[:, :, None], full[None, :, :])  # max(d(i,j), d(j,k)) at [i,j,k]
    assert np.all(full[:, None, :] <= triple + 1e-12)
    root = M.level_labels(sample.levels[0])
    assert np.all(full[root[:, None] != root[None, :]] == len(sample.levels))


def test_rsa_of_onehot_latent_path_against_tree_distance_is_one():
    sample = _rhm_sample(800)
    assert M.rsa_tree(_onehot_paths(sample.levels), sample.levels) == pytest.approx(1.0, abs=1e-12)
    noise = np.random.default_rng(18).normal(size=(800, 10))
    assert abs(M.rsa_tree(noise, sample.levels)) < 0.05


# ---------------------------------------------------------------- sensitivity

def test_synonym_sensitivity_falls_with_level_and_is_zero_at_leaves():
    sample = _rhm_sample(500)

    def onehot(x: np.ndarray) -> np.ndarray:
        return np.eye(8)[x].reshape(len(x), -1)  # (n, 8 * 8)

    assert M.synonym_sensitivity(onehot, sample, level=1) > 0.3
    # redrawing from a deeper level changes fewer tokens
    by_level = [M.synonym_sensitivity(onehot, sample, level=lv) for lv in range(4)]
    assert by_level[0] > by_level[1] > by_level[2] > by_level[3] == 0.0


# ---------------------------------------------------------------- duplicates

def test_metrics_unchanged_when_every_sample_is_duplicated():
    rng = np.random.default_rng(19)
    y = rng.integers(0, 4, 300)
    h = rng.normal(size=(4, 10))[y] + rng.normal(size=(300, 10))
    x = np.arange(300)
    hd, yd, xd = np.concatenate([h, h]), np.concatenate([y, y]), np.concatenate([x, x])
    pairs = {
        "nc1": (M.nc1(h, y), M.nc1(hd, yd)),
        "rnc1": (M.rnc1(h, y), M.rnc1(hd, yd)),
        "etf": (M.nc2(h, y)["etf_distance"], M.nc2(hd, yd)["etf_distance"]),
        "D": (M.separation_he_su(h, y), M.separation_he_su(hd, yd)),
        "erank": (M.effective_rank(h), M.effective_rank(hd)),
        "pr": (M.participation_ratio(h), M.participation_ratio(hd)),
        "twonn": (M.twonn(h), M.twonn(hd)),
        "knn_mi": (M.knn_mi_discrete(h, y), M.knn_mi_discrete(hd, yd)),
        "binned": (M.binned_mi(h, y, n_bins=8), M.binned_mi(hd, yd, n_bins=8)),
        "input_mi": (M.input_mi_discrete(h, x), M.input_mi_discrete(hd, xd)),
        "biased_cka": (M.cka_onehot(h, y, unbiased=False), M.cka_onehot(hd, yd, unbiased=False)),
    }
    for name, (once, twice) in pairs.items():
        assert twice == pytest.approx(once, rel=1e-9, abs=1e-12), name


# ---------------------------------------------------------------- validation

def test_bad_inputs_raise_clear_errors():
    h = np.zeros((10, 3))
    with pytest.raises(ValueError, match="samples but h has"):
        M.nc1(h, np.zeros(9, int))
    with pytest.raises(ValueError, match="n_samples, d"):
        M.effective_rank(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        M.twonn(np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="weighting"):
        M.separation_he_su(np.random.default_rng(0).normal(size=(10, 3)),
                           np.arange(10) % 2, weighting="bogus")
    with pytest.raises(TypeError, match="integer"):
        M.knn_mi_discrete(h, np.zeros(10))


# ---------------------------------------------------------------- paper-000 claims

def test_geometric_decay_is_fit_exactly_and_claims_hold():
    depth = np.arange(6)
    rows = M.paper000_claims({
        "effective_rank": 50 - 5 * depth, "separation": 3.0 * 0.5**depth,
        "mi_label": np.log(1 + depth), "mi_input": [5, 5, 4, 3, 2, 1]})
    by_claim = {r["claim"]: r for r in rows}
    assert by_claim[7]["ratio"] == pytest.approx(0.5, rel=1e-12)
    assert by_claim[7]["r2"] == pytest.approx(1.0, abs=1e-12)
    assert all(r["holds"] for r in rows)
    assert by_claim[6]["strict"] is False  # a flat step is not strict, but the trend holds
    assert 4 not in by_claim  # intrinsic dimension not given


def test_claims_fail_for_increasing_or_non_geometric_values():
    rows = M.paper000_claims({"effective_rank": [1, 2, 3, 4], "separation": [4, 1, 4, 1]})
    assert not any(r["holds"] for r in rows)
    assert M.geometric_fit([1.0, -1.0])["holds"] is False


def test_knn_estimators_on_a_subsample_stay_close_to_the_full_estimate():
    rng = np.random.default_rng(20)
    y = rng.integers(0, 4, 2000)
    h = 3.0 * np.eye(4)[y] + rng.normal(size=(2000, 4))
    # 1000 of 2000 rows: the k-NN MI and TwoNN estimators' spread at n = 1000 is
    # ~0.03 nats and ~3% respectively; 0.1 nats and 10% are ~3 sigma
    assert M.knn_mi_discrete(h, y, max_samples=1000) == pytest.approx(
        M.knn_mi_discrete(h, y), abs=0.1)
    assert M.twonn(h, max_samples=1000) == pytest.approx(M.twonn(h), rel=0.1)
