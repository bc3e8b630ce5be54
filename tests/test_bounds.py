"""Properties of the separation-of-scales bounds (tmr/bounds/core.py, background.md §5)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from tmr import bounds as B
from tmr.models import Residual

torch.set_num_threads(1)  # tensors here are tiny: extra threads only add contention
N_CLASSES = 4
FAST: dict[str, Any] = dict(steps=30, restarts=2)  # attack budget: soundness needs no more
HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def init_(net: nn.Sequential, seed: int, scale: float = 1.0) -> nn.Sequential:
    """Gaussian weights from a private generator (no global torch RNG)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=gen) * scale / math.sqrt(fan_in))
    return net.double()


def make_net(arch: str, seed: int) -> tuple[nn.Sequential, tuple[int, ...]]:
    """A small tail and its site shape; every layer kind the certifier handles appears."""
    shape: tuple[int, ...]
    if arch == "mlp":
        net, shape = nn.Sequential(nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU(),
                                   nn.Linear(10, N_CLASSES)), (8,)
    elif arch == "leaky":
        net, shape = nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.1), nn.Linear(16, 16),
                                   nn.LeakyReLU(0.3), nn.Linear(16, N_CLASSES)), (8,)
    elif arch == "conv":
        net, shape = nn.Sequential(nn.Conv1d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool1d(2),
                                   nn.Conv1d(4, 4, 3), nn.LeakyReLU(0.2), nn.Flatten(),
                                   nn.Linear(8, N_CLASSES)), (3, 8)
    elif arch == "conv2d":  # the grid CNN's layer kinds (tmr.models.GridCNN tail)
        net, shape = nn.Sequential(nn.Conv2d(2, 3, 2, stride=2), nn.ReLU(), nn.Conv2d(3, 4, 2),
                                   nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                                   nn.Linear(4, N_CLASSES)), (2, 6, 6)
    elif arch == "conv3d":
        net, shape = nn.Sequential(nn.Conv3d(1, 3, 2, stride=2), nn.LeakyReLU(0.1),
                                   nn.AvgPool3d(2), nn.Flatten(),
                                   nn.Linear(3, N_CLASSES)), (1, 4, 4, 4)
    else:
        net, shape = nn.Sequential(nn.Linear(6, 10), nn.ReLU(),
                                   Residual(nn.Sequential(nn.Linear(10, 10), nn.ReLU(),
                                                          nn.Linear(10, 10))),
                                   nn.ReLU(), nn.Linear(10, N_CLASSES)), (6,)
    return init_(net, seed), shape


def first_weight(net: nn.Sequential) -> np.ndarray:
    layer = net[0]
    assert isinstance(layer, nn.Linear)
    return layer.weight.detach().numpy()  # (m, d)


def random_basis(d: int, k: int, seed: int) -> np.ndarray:
    gen = np.random.default_rng(seed)
    return np.linalg.qr(gen.normal(size=(d, k)))[0]  # (d, k) orthonormal


def make_observable(kind: str, n: int, seed: int) -> B.Observable:
    labels = np.random.default_rng(seed).integers(0, N_CLASSES, size=n)
    if kind == "margin":
        return B.margin(labels)
    if kind == "loss":
        return B.loss(labels)
    if kind == "logit":
        return B.class_logit(seed % N_CLASSES)
    return B.probe(np.random.default_rng(seed + 1).normal(size=N_CLASSES), bias=0.3)


def inputs(shape: tuple[int, ...], n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed + 7)
    return torch.randn(n, *shape, generator=gen, dtype=torch.float64)


@HYP
@given(arch=st.sampled_from(["mlp", "leaky", "conv", "conv2d", "conv3d", "residual"]),
       kind=st.sampled_from(["margin", "loss", "logit", "probe"]),
       seed=st.integers(0, 10_000), k=st.integers(1, 6),
       eps=st.lists(st.floats(0.0, 6.0), min_size=1, max_size=3))
def test_attack_never_exceeds_certified_bound(arch, kind, seed, k, eps):
    net, shape = make_net(arch, seed)
    n = 6
    V = random_basis(math.prod(shape), k, seed)
    res = B.bound(net, inputs(shape, n, seed), V, make_observable(kind, n, seed), eps, **FAST)
    assert res.status == "certified"
    assert res.certified is not None and res.crown is not None and res.lipschitz is not None
    assert np.all(res.empirical <= res.certified)  # zero tolerance: slack is in `certified`
    best = np.minimum(res.crown, res.lipschitz)
    # certified = best + ROUND_SLACK·(|g(0)| + best) (tmr.bounds.core): allow exactly that slack
    slack = B.ROUND_SLACK * (np.abs(res.g0)[None] + best)
    assert np.all(res.certified <= best + slack * (1 + 1e-6) + 1e-12)


@HYP
@given(seed=st.integers(0, 10_000), k=st.integers(1, 5), eps=st.floats(0.0, 10.0),
       kind=st.sampled_from(["logit", "probe"]))
def test_linear_head_bound_is_eps_times_norm_of_c_w_v(seed, k, eps, kind):
    net = init_(nn.Sequential(nn.Linear(7, N_CLASSES)), seed)
    V = random_basis(7, k, seed)
    obs = make_observable(kind, 3, seed)
    c = np.eye(N_CLASSES)[obs.index] if kind == "logit" else obs.weight  # (C,)
    exact = eps * np.linalg.norm(c @ first_weight(net) @ V)
    res = B.bound(net, inputs((7,), 3, seed), V, obs, [eps], **FAST)
    assert res.certified is not None
    slack = B.ROUND_SLACK * (np.abs(res.g0) + exact)  # documented rounding allowance
    assert np.all(np.abs(res.certified[0] - exact) <= slack + 1e-13 * (1 + exact))
    np.testing.assert_allclose(res.empirical[0], exact, rtol=1e-6, atol=1e-12)  # PGD finds it


@pytest.mark.parametrize("arch", ["mlp", "leaky", "conv", "residual"])
@pytest.mark.parametrize("kind", ["margin", "loss", "logit", "probe"])
def test_bound_over_eps_tends_to_gradient_norm(arch, kind):
    net, shape = make_net(arch, 3)
    n, d = 5, math.prod(shape)
    h = inputs(shape, n, 3)
    V = torch.as_tensor(random_basis(d, 3, 3))
    obs = make_observable(kind, n, 3)
    x = h.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(obs.value(net(x)).sum(), x)
    grad_norm = (grad.reshape(n, d) @ V).norm(dim=1).numpy()  # ‖Vᵀ∇ₓg‖ = ‖∇_z g(0)‖
    eps = 1e-6
    res = B.bound(net, h, V.numpy(), obs, [eps], steps=5, restarts=1)
    assert res.crown is not None and res.lipschitz is not None
    # The bound before the documented rounding slack (which adds ROUND_SLACK·|g| regardless
    # of ε). CROWN is exact to first order once no ReLU crosses zero: relative error O(ε)
    # plus rounding of the centre (~1e-16·|g|/ε ≈ 1e-10), hence rtol 1e-5.
    sound = np.minimum(res.crown[0], res.lipschitz[0])
    np.testing.assert_allclose(sound / eps, grad_norm, rtol=1e-5, atol=1e-8)


@HYP
@given(arch=st.sampled_from(["mlp", "leaky", "conv", "residual"]),
       kind=st.sampled_from(["margin", "loss", "logit", "probe"]),
       seed=st.integers(0, 10_000), eps=st.floats(0.01, 5.0))
def test_exhaustive_grid_over_2d_disc_never_exceeds_bound(arch, kind, seed, eps):
    net, shape = make_net(arch, seed)
    n = 3
    h = inputs(shape, n, seed)
    V = random_basis(math.prod(shape), 2, seed)
    obs = make_observable(kind, n, seed)
    res = B.bound(net, h, V, obs, [eps], steps=5, restarts=1)
    assert res.certified is not None
    r = eps * np.sqrt(np.linspace(0.0, 1.0, 24))  # (24,) area-uniform radii incl. boundary
    t = np.linspace(0.0, 2 * np.pi, 96, endpoint=False)  # (96,)
    grid = np.stack([np.outer(r, np.cos(t)).ravel(), np.outer(r, np.sin(t)).ravel()], 1)
    z = torch.as_tensor(grid * (1 - 1e-12))  # (G, 2), inside the closed disc
    with torch.no_grad():
        g0 = obs.value(net(h))  # (n,)
        for i in range(n):
            x = (h[i].reshape(1, -1) + z @ torch.as_tensor(V).T).reshape(-1, *shape)
            obs_i = make_observable(kind, n, seed)
            if obs_i.labels is not None:
                obs_i = B.Observable(kind, np.full(len(z), obs_i.labels[i]))
            dev = (obs_i.value(net(x)) - g0[i]).abs().max().item()
            assert dev <= res.certified[0, i]


@pytest.mark.parametrize("kind", ["margin", "loss", "logit", "probe"])
def test_subspace_orthogonal_to_downstream_weights_gives_zero(kind):
    net = init_(nn.Sequential(nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, N_CLASSES)), 11)
    w = first_weight(net)  # (5, 8)
    V = np.linalg.svd(w)[2][5:].T  # (8, 3): null space of the first layer
    res = B.bound(net, inputs((8,), 4, 11), V, make_observable(kind, 4, 11), [0.5, 10.0])
    assert res.certified is not None
    # zero up to the documented rounding allowance ROUND_SLACK·|g(0)|
    assert np.all(res.certified <= B.ROUND_SLACK * np.abs(res.g0) + 1e-12)
    assert np.all(res.empirical <= 1e-12)


def test_zero_radius_gives_zero_bound():
    net, shape = make_net("residual", 5)
    res = B.bound(net, inputs(shape, 4, 5), random_basis(6, 3, 5), B.loss([0, 1, 2, 3]), [0.0])
    assert res.certified is not None
    assert np.all(res.certified <= 1e-8)


@pytest.mark.parametrize("layer", [nn.LayerNorm(12), nn.GELU(), nn.Tanh()])
def test_unsupported_layer_is_empirical_only(layer):
    net = init_(nn.Sequential(nn.Linear(8, 12), layer, nn.Linear(12, N_CLASSES)), 2)
    res = B.bound(net, inputs((8,), 3, 2), random_basis(8, 2, 2), B.class_logit(0), [1.0],
                  **FAST)
    assert res.status == "empirical only"
    assert res.certified is None and res.crown is None
    assert type(layer).__name__ in res.reason
    assert np.all(res.empirical > 0)


class _Hooked(nn.Module):
    """Minimal HookedModel stand-in: sites and tail(site)."""

    sites = ("layers.0.post", "layers.1.post")

    def tail(self, site: str) -> nn.Sequential:
        return make_net("mlp", 0)[0]


def test_bad_inputs_raise_clear_errors():
    net, _ = make_net("mlp", 0)
    h, obs = inputs((8,), 2, 0), B.class_logit(1)
    with pytest.raises(ValueError, match="not orthonormal"):
        B.bound(net, h, 2 * random_basis(8, 2, 0), obs, [1.0])
    with pytest.raises(ValueError, match="expected"):
        B.bound(net, h, random_basis(9, 2, 0), obs, [1.0])
    with pytest.raises(ValueError, match="≥ 0"):
        B.bound(net, h, random_basis(8, 2, 0), obs, [1.0, -0.1])
    with pytest.raises(ValueError, match="≥ 0"):
        B.bound(net, h, random_basis(8, 2, 0), obs, [math.nan])
    with pytest.raises(ValueError, match=r"unknown site 'layers\.7\.post'"):
        B.bound(_Hooked(), h, random_basis(8, 2, 0), obs, [1.0], site="layers.7.post")
    with pytest.raises(ValueError, match="labels"):
        B.bound(net, h, random_basis(8, 2, 0), B.margin([0, 9]), [1.0])
    res = B.bound(_Hooked(), h, random_basis(8, 2, 0), obs, [1.0], site="layers.1.post", **FAST)
    assert res.status == "certified"


def test_pca_split_variance_fraction_and_complement():
    gen = np.random.default_rng(0)
    acts = gen.normal(size=(500, 6)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])  # (500, 6)
    rel, tail = B.pca_split(acts, 2)
    ev = np.sort(np.linalg.eigvalsh(np.cov(acts.T)))[::-1]  # (6,)
    assert B.variance_fraction(acts, tail) == pytest.approx(ev[2:].sum() / ev.sum(), rel=1e-10)
    assert B.variance_fraction(acts, np.hstack([rel, tail])) == pytest.approx(1.0)
    comp = B.complement(tail)  # spans the same space as rel
    np.testing.assert_allclose(comp @ comp.T, rel @ rel.T, atol=1e-10)


def test_separation_index_is_ratio_of_mean_tail_to_relevant_bounds():
    net, _ = make_net("mlp", 4)
    h = inputs((8,), 5, 4)
    _, tail = B.pca_split(h.numpy(), 3)
    sep = B.separation(net, h, tail, B.margin([0, 1, 2, 3, 0]), [0.1, 1.0], acts=h.numpy(),
                       **FAST)
    assert sep.tail.certified is not None and sep.relevant.certified is not None
    np.testing.assert_allclose(sep.index,
                               sep.tail.certified.mean(1) / sep.relevant.certified.mean(1))
    assert 0 < (sep.variance_fraction or 0) < 1
    rows = B.table(sep)
    assert [r["eps"] for r in rows] == [0.1, 1.0] and all(r["ratio"] >= 1 for r in rows)


def test_crown_matches_auto_lirpa_on_relu_mlp():
    auto_lirpa = pytest.importorskip("auto_LiRPA")
    from auto_LiRPA.perturbations import PerturbationLpNorm

    net, _ = make_net("mlp", 9)
    h, V, eps = inputs((8,), 4, 9), random_basis(8, 3, 9), 0.7
    lift = nn.Linear(3, 8).double()  # z ↦ h_i + Vz, one model per input row
    ours = B.bound(net, h, V, B.class_logit(2), [eps], steps=5, restarts=1)
    assert ours.crown is not None
    for i in range(len(h)):
        with torch.no_grad():
            lift.weight.copy_(torch.as_tensor(V))
            lift.bias.copy_(h[i])
        model = auto_lirpa.BoundedModule(nn.Sequential(lift, *net), torch.zeros(1, 3).double())
        z = auto_lirpa.BoundedTensor(torch.zeros(1, 3).double(),
                                     PerturbationLpNorm(norm=2, eps=eps))
        lb, ub = model.compute_bounds(x=(z,), method="CROWN")
        g0 = float(ours.g0[i])
        theirs = max(g0 - float(lb[0, 2]), float(ub[0, 2]) - g0)
        # identical relaxations (chord above, adaptive slope below): equal to rounding
        assert ours.crown[0, i] == pytest.approx(theirs, rel=1e-6, abs=1e-9)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=st.sampled_from(["mlp", "leaky", "conv", "conv2d", "conv3d", "residual"]),
       kind=st.sampled_from(["margin", "loss", "logit", "probe"]),
       seed=st.integers(0, 10**6), k=st.integers(1, 8),
       eps=st.lists(st.floats(0.0, 20.0), min_size=1, max_size=3))
def test_strong_attack_never_exceeds_certified_bound_many_networks(arch, kind, seed, k, eps):
    net, shape = make_net(arch, seed)
    k = min(k, math.prod(shape))
    V = random_basis(math.prod(shape), k, seed)
    res = B.bound(net, inputs(shape, 8, seed), V, make_observable(kind, 8, seed), eps,
                  steps=150, restarts=6, rng=seed)
    assert res.certified is not None
    assert np.all(res.empirical <= res.certified)
