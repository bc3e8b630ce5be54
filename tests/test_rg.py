"""Known answers for the RG tools (background notes §4)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from tmr.rg import (
    BlockScheme,
    KernelScheme,
    PCAScheme,
    alignment_relevance,
    bayesian_renormalisation,
    block_lattice,
    block_sequence,
    conjugate_kernel,
    cutoff_for_budget,
    density,
    empirical_ntk,
    faithfulness_curve,
    fisher_eigen,
    fisher_matrix,
    fit_rg_map,
    fixed_point,
    ising_decimation,
    linearised_exponent,
    majority_map,
    measure_rg_map,
    model_forward,
    nn_correlation,
    phenomenological_rg,
    power_law_fit,
    run_flow,
    selectivity_scorer,
    spanning_map_2x2,
    spanning_probability,
    spectral_gaps,
)
from tmr.rg.jacobian import param_chunks

GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0  # fixed point of the 2x2 spanning rule
NU_SPANNING_2X2 = np.log(2.0) / np.log(4 * GOLDEN - 4 * GOLDEN ** 3)  # ≈ 1.635


# ------------------------------------------------------------------ block schemes
def _exact_block_map(rule: str, shape: tuple[int, ...], p: float) -> float:
    """Σ over all 2^(sites) block configurations of P(config) · rule(config)."""
    total = 0.0
    n_sites = int(np.prod(shape))
    for bits in itertools.product((0, 1), repeat=n_sites):
        cfg = np.array(bits, dtype=np.uint8).reshape((1, *shape))
        k = sum(bits)
        out = block_lattice(cfg, shape[0], rule)  # type: ignore[arg-type]
        total += p ** k * (1 - p) ** (n_sites - k) * float(out.ravel()[0])
    return total


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.77])
def test_three_site_majority_map_is_p3_plus_3p2q(p: float) -> None:
    expected = p ** 3 + 3 * p ** 2 * (1 - p)
    assert _exact_block_map("majority", (3,), p) == pytest.approx(expected, abs=1e-14)
    assert float(majority_map(p, 3)) == pytest.approx(expected, abs=1e-14)


def test_three_site_majority_fixed_point_is_half() -> None:
    p_star = fixed_point(lambda p: float(majority_map(p)), (0.2, 0.8))
    assert p_star == pytest.approx(0.5, abs=1e-10)


@pytest.mark.parametrize("p", [0.2, 0.5, GOLDEN, 0.9])
def test_spanning_2x2_map_is_2p2_minus_p4(p: float) -> None:
    assert _exact_block_map("spanning", (2, 2), p) == pytest.approx(2 * p ** 2 - p ** 4, abs=1e-14)


def test_spanning_2x2_fixed_point_and_exponent() -> None:
    p_star = fixed_point(lambda p: float(spanning_map_2x2(p)), (0.3, 0.9))
    assert p_star == pytest.approx(0.6180340, abs=1e-6)
    nu = linearised_exponent(lambda p: float(spanning_map_2x2(p)), p_star, 2)
    assert nu == pytest.approx(1.635, abs=1e-3)
    assert nu == pytest.approx(NU_SPANNING_2X2, rel=1e-6)


def test_spanning_fixed_point_and_nu_estimated_from_measured_flow() -> None:
    ps = np.linspace(0.3, 0.9, 13)
    rps = measure_rg_map("spanning", 2, ps, side=64, n_samples=60, rng=1)
    # 60*32*32 = 61k blocks per p: std of R(p) <= 0.002; the degree-4 fit averages it down.
    # R(p) is a quartic, so the fit is exact up to noise; 0.01 on p*, 0.06 on ν (ν
    # amplifies slope noise by ~1/(R'(p*) ln R'(p*))).
    p_star, nu = fit_rg_map(ps, rps, 2, degree=4, bracket=(0.4, 0.8))
    assert p_star == pytest.approx(GOLDEN, abs=0.01)
    assert nu == pytest.approx(1.635, abs=0.06)


def test_majority_block_flow_runs_away_from_half() -> None:
    rng = np.random.default_rng(0)
    u = rng.random((50, 3 ** 6))  # (n, L) 1D chains
    scheme = BlockScheme("majority")
    lo = run_flow(scheme, (u < 0.4).astype(np.uint8), [3] * 5, {"density": lambda c:
                                                             density(c.coarse)}, iterate=True)
    hi = run_flow(scheme, (u < 0.6).astype(np.uint8), [3] * 5, {"density": lambda c:
                                                             density(c.coarse)}, iterate=True)
    assert np.all(np.diff(lo.column("density")) < 0)
    assert np.all(np.diff(hi.column("density")) > 0)
    assert lo.column("scale")[-1] == 3 ** 5


def test_ising_decimation_tanh_k_prime_is_tanh_squared() -> None:
    k = 0.8
    t = np.tanh(k)
    rng = np.random.default_rng(3)
    n, length = 400, 512
    # exact sampling of the open 1D chain: bonds s_i s_{i+1} are independent, +1 w.p. (1+t)/2
    bonds = np.where(rng.random((n, length - 1)) < (1 + t) / 2, 1, -1)
    s0 = rng.choice([-1, 1], size=(n, 1))
    spins = np.concatenate([s0, s0 * np.cumprod(bonds, axis=1)], axis=1)  # (n, L)
    occ = ((spins + 1) // 2).astype(np.uint8)  # {0,1} lattice gas
    # 100k bond products, variance 1 - t^2 ≈ 0.56: std 0.0024 (plus tiny magnetisation
    # term); 0.01 is 4 sigma
    assert nn_correlation(occ) == pytest.approx(t, abs=0.01)
    coarse = block_lattice(occ, 2, "decimation")  # (n, L/2)
    assert nn_correlation(coarse) == pytest.approx(t ** 2, abs=0.01)
    assert float(np.tanh(ising_decimation(k))) == pytest.approx(t ** 2, abs=1e-14)
    # the only fixed points are K = 0 (attractive) and K = ∞
    ks = [2.0]
    for _ in range(12):
        ks.append(float(ising_decimation(ks[-1])))
    assert np.all(np.diff(ks) < 0) and ks[-1] < 1e-3


def test_block_mean_composes_and_remainder_restores_input() -> None:
    rng = np.random.default_rng(5)
    x = rng.random((3, 8, 8, 8))  # (n, L, L, L)
    twice = block_lattice(block_lattice(x, 2, "mean"), 2, "mean")
    assert np.allclose(twice, block_lattice(x, 4, "mean"))
    cg = BlockScheme("mean")(x, 2)
    assert cg.remainder is not None
    up = np.repeat(np.repeat(np.repeat(cg.coarse, 2, 1), 2, 2), 2, 3)
    assert np.allclose(up + cg.remainder, x)


def test_spanning_rule_in_3d_detects_a_straight_path() -> None:
    x = np.zeros((2, 4, 4, 4), dtype=np.uint8)
    x[0, :, 1, 2] = 1  # column along axis 1 through the whole lattice
    x[1, :3, 1, 2] = 1  # stops one site short
    assert spanning_probability(x[:1]) == 1.0
    assert spanning_probability(x[1:]) == 0.0
    blocks = block_lattice(x, 4, "spanning")
    assert blocks.ravel().tolist() == [1, 0]


def test_sequence_tuple_blocks_are_injective_and_tree_aligned() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, size=(200, 8))  # (n, T)
    codes = block_sequence(x, 2, "tuple")  # (n, 4)
    pairs = x.reshape(200, 4, 2)
    a, b = codes.ravel(), pairs.reshape(-1, 2)
    same_code = a[:, None] == a[None, :]
    same_pair = (b[:, None, :] == b[None, :, :]).all(-1)
    assert np.array_equal(same_code, same_pair)
    assert np.array_equal(block_sequence(x, 2, "decimation"), x[:, ::2])
    maj = block_sequence(np.array([[1, 1, 0, 2, 2, 2]]), 3, "majority")
    assert maj.tolist() == [[1, 2]]


@pytest.mark.parametrize("seed", range(3))
def test_tree_aligned_tuple_blocks_determine_the_rhm_parent_level(seed: int) -> None:
    from generators import rhm

    world = rhm.make_world(vocab_size=6, n_classes=4, n_synonyms=3, tuple_size=2,
                           n_levels=3, rng=seed)
    smp = rhm.sample(world, 300, rng=seed + 10)
    x = np.asarray(smp.x, dtype=np.int64)  # (n, 8) leaves
    parent = np.asarray(smp.levels[-2], dtype=np.int64)  # (n, 4)
    codes = block_sequence(x, 2, "tuple")  # (n, 4)
    pairs = np.unique(np.stack([codes.ravel(), parent.ravel()], 1), axis=0)
    # unambiguous rules: every aligned s-tuple has exactly one parent symbol
    assert np.unique(pairs[:, 0]).size == pairs.shape[0]
    # blocks shifted by one token straddle two parents and do not determine them
    shifted = block_sequence(x[:, 1:-1], 2, "tuple")  # (n, 3)
    pairs_s = np.unique(np.stack([shifted.ravel(), parent[:, 1:].ravel()], 1), axis=0)
    assert np.unique(pairs_s[:, 0]).size < pairs_s.shape[0]


def test_naive_block_rule_at_pc_does_not_stay_at_pc() -> None:
    p_c = 0.5927462  # 2D square site percolation threshold, Newman & Ziff 2000
    assert abs(float(spanning_map_2x2(p_c)) - p_c) > 0.01
    assert abs(float(majority_map(p_c, 3)) - p_c) > 0.01


def test_block_rules_reject_sides_not_multiple_of_b() -> None:
    with pytest.raises(ValueError, match="multiples of the block size"):
        block_lattice(np.zeros((1, 6, 6)), 4, "majority")


# ------------------------------------------------------------------ spectra
def test_power_law_fit_and_gaps_on_exact_spectra() -> None:
    k = np.arange(1, 101)
    fit = power_law_fit(k ** -1.5)
    assert fit.alpha == pytest.approx(1.5, abs=1e-10) and fit.r2 == pytest.approx(1.0)
    lam = np.concatenate([np.full(4, 10.0), np.full(6, 0.1)])
    ratios, top = spectral_gaps(lam, top=1)
    assert top[0] == 4 and ratios[3] == pytest.approx(100.0)
    assert cutoff_for_budget(lam, 0.05) == 4  # tail 0.6/40.6 ≈ 1.5 %
    assert cutoff_for_budget(lam, 0.0) == 10
    with pytest.raises(ValueError, match="budget"):
        cutoff_for_budget(lam, 1.5)


def _planted(seed: int, n: int = 600, d: int = 20, r: int = 3,
             noise: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H = Z diag(s) Aᵀ + noise with A (d, r) orthonormal; returns H, A, Z."""
    rng = np.random.default_rng(seed)
    a, _ = np.linalg.qr(rng.normal(size=(d, r)))  # (d, r)
    z = rng.normal(size=(n, r))  # (n, r)
    scales = np.array([4.0, 2.5, 1.5])[:r]
    h = (z * scales) @ a.T + noise * rng.normal(size=(n, d))  # (n, d)
    return h, a, z


@pytest.mark.parametrize("seed", range(5))
def test_pca_truncation_keeps_planted_top_subspace(seed: int) -> None:
    h, a, _ = _planted(seed)
    cg = PCAScheme()(h, 3)
    v = cg.modes  # (d, 3)
    # projector distance ≈ noise/signal ≈ 0.05/1.5 per direction
    assert np.linalg.norm(v @ v.T - a @ a.T, 2) < 0.1
    assert cg.tail_basis is not None
    full = np.hstack([cg.modes, cg.tail_basis])
    assert np.allclose(full.T @ full, np.eye(h.shape[1]), atol=1e-10)
    mu = cg.meta["mean"]
    assert np.allclose(mu + cg.coarse @ v.T + cg.remainder, h)
    # the 5 % variance budget picks exactly the planted rank
    assert PCAScheme()(h, 0.05).modes.shape[1] == 3


def test_alignment_order_picks_the_mode_carrying_the_label() -> None:
    h, _, z = _planted(11)
    labels = (z[:, 2] > 0).astype(np.int64)  # carried by the third-largest mode
    cg = PCAScheme(order="alignment", target=labels)(h, 1)
    assert cg.meta["kept_index"][0] == 2
    # on orthogonal modes (all PCA scores) the per-mode fractions add up to at most 1
    scores = (h - h.mean(0)) @ PCAScheme()(h, h.shape[1]).modes
    align = alignment_relevance(scores, labels)
    assert np.all(align >= 0) and align.sum() <= 1 + 1e-9


def test_null_modes_of_a_rank_deficient_layer_get_no_alignment() -> None:
    """Dead units and duplicated units add zero-variance PCA modes whose scores are pure
    round-off; they must not take a share of the label's energy (sum stays <= 1)."""
    h, _, z = _planted(12)
    labels = (z[:, 0] > 0).astype(np.int64)
    deficient = np.hstack([h, h[:, :3], np.zeros((len(h), 4))])  # rank d, width d + 7
    scores = (deficient - deficient.mean(0)) @ PCAScheme()(deficient, deficient.shape[1]).modes
    align = alignment_relevance(scores, labels)
    assert np.all(align[h.shape[1]:] == 0.0)
    assert align.sum() <= 1 + 1e-9


def test_kernel_truncation_remainder_trace_is_tail_eigensum() -> None:
    h, _, _ = _planted(4, n=80)
    k = conjugate_kernel(h)
    assert np.allclose(k, h @ h.T / h.shape[1])
    cg = KernelScheme("ck")(k, 5)
    assert cg.remainder is not None and cg.tail_relevance is not None
    assert np.trace(cg.remainder) == pytest.approx(cg.tail_relevance.sum(), rel=1e-9)
    flow = run_flow(KernelScheme("ck"), k, [40, 20, 10, 5, 1],
                    {"tail": lambda c: float(np.sum(np.asarray(c.tail_relevance)))})
    assert np.all(np.diff(flow.column("tail")) >= -1e-9)


# ------------------------------------------------------------------ eNTK
@pytest.mark.parametrize("bias", [False, True])
def test_entk_of_linear_model_is_gram_of_inputs(bias: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(13, 5, dtype=torch.float64)
    model = nn.Linear(5, 1, bias=bias).double()
    theta = empirical_ntk(model, x, sample_chunk=4, param_chunk=2)
    xn = x.numpy()
    assert np.allclose(theta, xn @ xn.T + (1.0 if bias else 0.0), atol=1e-12)


def test_entk_full_output_of_linear_model_is_kron_with_identity() -> None:
    x = torch.randn(6, 4, dtype=torch.float64)
    model = nn.Linear(4, 3, bias=False).double()
    theta = empirical_ntk(model, x, output="full", sample_chunk=5, param_chunk=5)
    xn = x.numpy()
    assert np.allclose(theta, np.kron(xn @ xn.T, np.eye(3)), atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_entk_symmetric_psd_and_independent_of_chunking(seed: int) -> None:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2)).double()
    x = torch.randn(17, 6, dtype=torch.float64)
    a = empirical_ntk(model, x, sample_chunk=5, param_chunk=37)
    b = empirical_ntk(model, x, sample_chunk=100, param_chunk=10 ** 6)
    assert np.allclose(a, b, rtol=1e-10, atol=1e-10)
    assert np.allclose(a, a.T, atol=1e-12)
    assert np.linalg.eigvalsh(a).min() > -1e-9 * np.abs(a).max()


def test_param_chunks_cover_every_parameter_once() -> None:
    sizes = [7, 1, 30, 4]
    chunks = param_chunks(sizes, 6)
    assert all(sum(b - a for _, a, b in c) <= 6 for c in chunks)
    covered = [(ti, i) for c in chunks for ti, a, b in c for i in range(a, b)]
    assert covered == [(ti, i) for ti, s in enumerate(sizes) for i in range(s)]


# ------------------------------------------------------------------ Fisher / Bayesian RG
def _linear_gaussian(seed: int, n: int = 40, d: int = 6, sigma: float = 0.7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.linspace(0.2, 2.0, d)  # (n, d) distinct scales
    theta_true = rng.normal(size=d)
    y = x @ theta_true + sigma * rng.normal(size=n)  # (n,)
    model = nn.Linear(d, 1, bias=False).double()
    theta_hat = np.linalg.lstsq(x, y, rcond=None)[0]
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(theta_hat[None, :]))
    return model, torch.as_tensor(x), torch.as_tensor(y), sigma


def test_expected_fisher_of_linear_gaussian_regression_is_xtx_over_sigma2() -> None:
    model, x, y, sigma = _linear_gaussian(0)
    f = fisher_matrix(model, x, y, kind="expected", sigma=sigma, param_chunk=4)
    xn = x.numpy()
    assert np.allclose(f, xn.T @ xn / sigma ** 2, atol=1e-10)
    vals, vecs = fisher_eigen(model, x, y, kind="expected", sigma=sigma)
    assert np.allclose(vals, np.linalg.eigvalsh(xn.T @ xn / sigma ** 2)[::-1], rtol=1e-9)
    assert np.allclose(vecs.T @ vecs, np.eye(vals.size), atol=1e-9)


def test_empirical_fisher_is_sum_of_score_outer_products() -> None:
    model, x, y, sigma = _linear_gaussian(1)
    xn, yn = x.numpy(), y.numpy()
    resid = yn - xn @ model.weight.detach().numpy()[0]
    scores = xn * (resid / sigma ** 2)[:, None]  # (n, d) ∇θ log p(y_i | x_i)
    f = fisher_matrix(model, x, y, kind="empirical", sigma=sigma, sample_chunk=7)
    assert np.allclose(f, scores.T @ scores, atol=1e-10)


def test_expected_fisher_of_softmax_regression_matches_kron_formula() -> None:
    torch.manual_seed(1)
    x = torch.randn(9, 3, dtype=torch.float64)
    model = nn.Linear(3, 4, bias=False).double()
    f = fisher_matrix(model, x, kind="expected", likelihood="categorical")
    p = torch.softmax(model(x), -1).detach().numpy()  # (n, c)
    ref = sum(np.kron(np.diag(pi) - np.outer(pi, pi), np.outer(xi, xi))
              for pi, xi in zip(p, x.numpy(), strict=True))
    assert np.allclose(f, ref, atol=1e-12)


def test_empirical_fisher_of_softmax_regression_is_sum_of_score_outer_products() -> None:
    torch.manual_seed(2)
    x = torch.randn(11, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (11,))
    model = nn.Linear(3, 4, bias=False).double()
    f = fisher_matrix(model, x, y, kind="empirical", likelihood="categorical", sample_chunk=4)
    p = torch.softmax(model(x), -1).detach().numpy()  # (n, c)
    resid = np.eye(4)[y.numpy()] - p  # (n, c) ∂ log p(y|f)/∂f
    scores = np.stack([np.kron(r, xi) for r, xi in zip(resid, x.numpy(), strict=True)])
    assert np.allclose(f, scores.T @ scores, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_bayesian_pruning_loss_change_is_half_lambda_theta_squared(seed: int) -> None:
    model, x, y, sigma = _linear_gaussian(seed)

    def nll(m: nn.Module) -> float:  # Σ (y − f)² / (2σ²): Hessian XᵀX/σ² = Fisher
        with torch.no_grad():
            return float(((y - m(x)[:, 0]) ** 2).sum() / (2 * sigma ** 2))

    vals, vecs = fisher_eigen(model, x, y, kind="expected", sigma=sigma)
    rows = bayesian_renormalisation(model, nll, vals, vecs, ks=range(vals.size + 1))
    theta = model.weight.detach().numpy()[0]
    for row in rows:
        k = int(row["k"])
        expected = 0.5 * float((vals[k:] * (vecs[:, k:].T @ theta) ** 2).sum())
        assert row["delta_loss"] == pytest.approx(expected, rel=1e-8, abs=1e-9)
        assert row["quadratic"] == pytest.approx(expected, rel=1e-8, abs=1e-9)
    assert rows[-1]["delta_loss"] == pytest.approx(0.0, abs=1e-9)
    # parameters are restored after the sweep
    assert np.allclose(model.weight.detach().numpy()[0], theta)


# ------------------------------------------------------------------ phenomenological RG
def test_phenomenological_alpha_is_one_for_independent_units() -> None:
    h = np.random.default_rng(0).normal(size=(4000, 64))
    res = phenomenological_rg(h)
    # greedy pairing of the most correlated pairs adds a small positive bias
    # (max sample correlation ~ sqrt(2 ln(d²)/n) ≈ 0.05); 0.1 covers it
    assert res.alpha == pytest.approx(1.0, abs=0.1)
    assert res.clusters.shape == (1, 64)
    assert sorted(res.clusters.ravel().tolist()) == list(range(64))


def test_phenomenological_alpha_is_two_for_identical_units() -> None:
    z = np.random.default_rng(1).normal(size=(500, 1))
    res = phenomenological_rg(np.repeat(z, 32, axis=1))
    assert res.alpha == pytest.approx(2.0, abs=1e-8)


# ------------------------------------------------------------------ faithfulness
class TinyHooked(nn.Module):
    """Stub of the HookedModel contract: sites and forward_from(site, h)."""

    sites = ("layers.0.post", "head")

    def __init__(self, a: np.ndarray, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        d = a.shape[0]
        self.l0 = nn.Linear(d, d).double()
        self.l1 = nn.Linear(d, 32).double()
        self.l2 = nn.Linear(32, 2).double()
        with torch.no_grad():  # the tail reads only the planted subspace
            proj = torch.as_tensor(a @ a.T)
            self.l1.weight.copy_(self.l1.weight @ proj)

    def forward_from(self, site: str, h: torch.Tensor) -> torch.Tensor:
        if site != "layers.0.post":
            raise KeyError(site)
        return self.l2(torch.relu(self.l1(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from("layers.0.post", self.l0(x))


def test_faithfulness_of_linear_readout_is_exactly_monotone_in_k() -> None:
    h, _, _ = _planted(7)
    w = np.random.default_rng(7).normal(size=(h.shape[1], 3))  # (d, 3) linear readout
    full = h @ w
    cg = PCAScheme()(h, h.shape[1])
    rows = faithfulness_curve(h, cg.modes, cg.meta["mean"], list(range(h.shape[1], -1, -1)),
                              forward=lambda z: z @ w,
                              observables={"mse": lambda out: float(((out - full) ** 2).mean())})
    mse = np.array([r["mse"] for r in rows])  # k decreasing
    assert mse[0] == pytest.approx(0.0, abs=1e-20)
    assert np.all(np.diff(mse) >= -1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_faithfulness_monotone_on_planted_low_rank_network(seed: int) -> None:
    h, a, z = _planted(seed, n=800)
    model = TinyHooked(a, seed)
    fwd = model_forward(model, "layers.0.post")
    full = fwd(h)
    cg = PCAScheme()(h, h.shape[1])
    levels = {"coarse": (z[:, 0] > 0).astype(np.int64), "fine": (z[:, 2] > 0).astype(np.int64)}
    ks = [20, 10, 3, 2, 1, 0]
    rows = faithfulness_curve(
        h, cg.modes, cg.meta["mean"], ks, forward=fwd, levels=levels,
        observables={"mse": lambda out: float(((out - full) ** 2).mean()),
                     "agree": lambda out: float((out.argmax(1) == full.argmax(1)).mean())})
    mse = np.array([r["mse"] for r in rows])
    agree = np.array([r["agree"] for r in rows])
    # the tail reads only the 3 planted modes: dropping noise modes (k >= 3) costs ~nothing
    assert mse[2] < 1e-2 * mse[-1]
    assert np.all(np.diff(mse) >= -1e-3 * mse[-1])
    # argmax agreement over 800 samples: flips near the decision boundary are noisy; 2 %
    assert np.all(np.diff(agree) <= 0.02)
    coarse = np.array([r["probe:coarse"] for r in rows])
    fine = np.array([r["probe:fine"] for r in rows])
    # 240 held-out samples: std of an accuracy ≈ 0.03; probes drop to chance once their
    # mode is cut (fine: k < 3, coarse: k < 1)
    assert coarse[4] > 0.9 and coarse[5] < 0.65
    assert fine[2] > 0.9 and fine[3] < 0.65


def test_selectivity_is_zero_for_a_memorising_layer_and_high_for_a_label_layer() -> None:
    rng = np.random.default_rng(0)
    types = rng.integers(0, 60, size=1200)  # (n,) 60 input types, each seen ~20 times
    label = types % 2  # the real task: a function of the input type
    score = selectivity_scorer(types[:, None])
    memorise = np.eye(60)[types]  # (n, 60) one-hot of the input: solves any type task
    label_only = (2.0 * label - 1.0)[:, None] + 0.1 * rng.normal(size=(1200, 1))  # (n, 1)
    # 360 held-out samples: accuracy std ≤ 0.03. On the 1-D label feature the control
    # task is solved only where the random control agrees with the label: ≈ 0.5 ± 0.065
    # over 60 types, so selectivity ≈ 0.5 and > 0.25 is ~4 sigma
    assert score(memorise, label) == pytest.approx(0.0, abs=0.05)
    assert score(label_only, label) > 0.25
