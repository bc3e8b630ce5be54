"""Sparse autoencoders: TopK sparsity, determinism, dictionary recovery, Matryoshka nesting,
the SAE as an RG scheme, save/load, and the tail subspace handed to ``tmr bound``."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from tmr.metrics.features import fvu, unit_rows
from tmr.rg import CoarseGrained, Scheme
from tmr.sae import (
    SAEConfig,
    SAEScheme,
    dictionary,
    encode,
    load_sae,
    sae_split,
    save_sae,
    train_sae,
)

D, ATOMS, ACTIVE = 24, 48, 3


def sparse_data(seed: int, n: int = 12000) -> tuple[np.ndarray, np.ndarray]:
    """x = codes @ atoms: ATOMS unit atoms in R^D, each sample using ~ACTIVE of them with
    coefficients in [1, 2]; returns (x (n, D), atoms (ATOMS, D))."""
    rng = np.random.default_rng(seed)
    atoms = unit_rows(rng.standard_normal((ATOMS, D)))
    on = rng.random((n, ATOMS)) < ACTIVE / ATOMS
    codes = on * rng.uniform(1.0, 2.0, (n, ATOMS))
    return codes @ atoms, atoms


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="width=0"):
        SAEConfig(width=0)
    with pytest.raises(ValueError, match="kind="):
        SAEConfig(kind="gated")
    with pytest.raises(ValueError, match="k=9"):
        SAEConfig(kind="topk", width=8, k=9)
    with pytest.raises(ValueError, match="prefixes"):
        SAEConfig(kind="matryoshka", width=8, k=2, prefixes=(4, 2, 8))
    assert SAEConfig(kind="matryoshka", width=64).prefixes == (8, 16, 32, 64)


@pytest.mark.parametrize("seed", [0, 1])
def test_topk_keeps_exactly_k_actives(seed: int) -> None:
    x, _ = sparse_data(seed, 2000)
    sae = train_sae(x, SAEConfig(kind="topk", width=32, k=5, min_steps=20), seed)
    f = encode(sae, x)
    with torch.no_grad():
        u = (torch.as_tensor(x, dtype=torch.float32) - sae.centre) / sae.scale
        positive = (sae._pre(u) > 0).sum(1).numpy()
    # exactly k where at least k pre-activations are positive (ReLU zeros cannot be active)
    np.testing.assert_array_equal((f > 0).sum(1), np.minimum(positive, 5))
    assert (positive >= 5).mean() > 0.9


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    x, _ = sparse_data(0, 3000)
    cfg = SAEConfig(kind="topk", width=32, k=4, min_steps=30)
    a, b, c = train_sae(x, cfg, 7), train_sae(x, cfg, 7), train_sae(x, cfg, 8)
    for name, p in a.state_dict().items():
        assert torch.equal(p, b.state_dict()[name]), name
    assert not torch.equal(a.W_dec, c.W_dec)


@pytest.mark.parametrize("data_seed", [3, 4, 5])
def test_topk_sae_recovers_a_planted_sparse_dictionary(data_seed: int) -> None:
    x, atoms = sparse_data(data_seed)
    # a dictionary twice as wide as the planted one (as SAEs are used: overcomplete) and
    # k = ACTIVE + 1; on these three data seeds 94-100 % of the atoms reach cosine 0.9
    cfg = SAEConfig(kind="topk", width=2 * ATOMS, k=ACTIVE + 1, min_steps=400,
                    batch_size=512, lr=3e-3)
    dec, _ = dictionary(train_sae(x, cfg, 0))
    best = (unit_rows(dec) @ atoms.T).max(axis=0)  # (ATOMS,) best learned match per atom
    assert np.mean(best >= 0.9) >= 0.85, np.sort(best)[:8]


def test_relu_sae_l1_trades_sparsity_for_error() -> None:
    x, _ = sparse_data(3, 4000)
    l0, err = [], []
    for l1 in (0.015, 0.15, 0.5):
        sae = train_sae(x, SAEConfig(kind="relu", width=ATOMS, l1=l1, min_steps=200,
                                     batch_size=512, lr=3e-3), 0)
        f = encode(sae, x)
        dec, off = dictionary(sae)
        l0.append((f > 0).sum(1).mean())
        err.append(fvu(x, f @ dec + off))
    assert l0[0] > l0[1] > l0[2] and err[0] < err[1] < err[2], (l0, err)


def test_matryoshka_prefixes_reconstruct_better_with_width() -> None:
    x, _ = sparse_data(5)
    cfg = SAEConfig(kind="matryoshka", width=ATOMS, k=4, prefixes=(6, 12, 24, ATOMS),
                    min_steps=400, batch_size=512, lr=3e-3)
    scheme = SAEScheme(train_sae(x, cfg, 0))
    errors = [fvu(x, x - scheme(x, p).remainder) for p in cfg.prefixes]
    assert all(a > b for a, b in itertools.pairwise(errors)), errors
    assert errors[-1] < 0.25 < errors[0]


def test_sae_scheme_follows_the_rg_protocol() -> None:
    x, _ = sparse_data(1, 3000)
    scheme = SAEScheme(config=SAEConfig(kind="topk", width=32, k=4, min_steps=40), rng=0)
    assert isinstance(scheme, Scheme) and scheme.name == "sae-topk"
    cg = scheme(x, 10)
    assert isinstance(cg, CoarseGrained)
    assert cg.coarse.shape == (3000, 10) and cg.modes.shape == (D, 10)
    assert np.all(np.diff(cg.relevance) <= 0)  # kept by decreasing relevance
    tail = cg.tail_basis
    assert tail is not None and tail.shape == (D, D - 10)
    np.testing.assert_allclose(tail.T @ tail, np.eye(D - 10), atol=1e-10)
    np.testing.assert_allclose(tail.T @ cg.modes, 0, atol=1e-10)
    assert cg.remainder is not None
    full = scheme(x, 32)
    assert fvu(x, x - full.remainder) < fvu(x, x - cg.remainder)
    with pytest.raises(ValueError, match="scale=33"):
        scheme(x, 33)


def test_save_load_round_trip_and_bound_split(tmp_path: Path) -> None:
    x, _ = sparse_data(2, 2000)
    sae = train_sae(x, SAEConfig(kind="topk", width=16, k=3, min_steps=10), 0)
    path = save_sae(sae, tmp_path, seed=0, extra={"site": "s"})
    assert path.name == "sae_topk_16_seed0.pt" and path.with_suffix(".json").is_file()
    back = load_sae(path)
    np.testing.assert_array_equal(encode(back, x), encode(sae, x))
    rel, tail = sae_split(tmp_path, "sae-topk", x, 5)
    assert rel.shape == (D, 5) and tail.shape == (D, D - 5)
    np.testing.assert_allclose(np.hstack([rel, tail]).T @ np.hstack([rel, tail]), np.eye(D),
                               atol=1e-10)
    with pytest.raises(ValueError, match="no saved matryoshka SAE"):
        sae_split(tmp_path, "matryoshka", x, 5)
