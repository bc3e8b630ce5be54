"""Models: hook sites, run_with_cache, tail == forward_from, seeded init."""

from __future__ import annotations

import pytest
import torch

from tmr.hooks import HookPoint, run_with_cache
from tmr.models import InputSpec, ModelConfig, Residual, build_model, input_spec

SPEC = InputSpec("tokens", 8, 10)  # 8 positions, vocab 8 + pad + mask
CONFIGS = [
    ModelConfig(kind="mlp", width=32),
    ModelConfig(kind="mlp", width=32, residual=True, layer_norm=True, embedding="learned"),
    ModelConfig(kind="cnn", width=16, filter_size=2),
    ModelConfig(kind="transformer", width=16, n_layers=2, n_heads=2),
]


def _x(n: int = 6) -> torch.Tensor:
    return torch.randint(0, 8, (n, 8), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.kind}-{c.residual}")
def test_tail_from_every_site_reproduces_the_output(cfg: ModelConfig) -> None:
    model = build_model(cfg, SPEC, 1, 8, torch.Generator().manual_seed(1)).eval()
    out, cache = run_with_cache(model, _x())
    assert list(cache) == list(model.sites)
    for site in model.sites:
        torch.testing.assert_close(model.tail(site)(cache[site]), out)
        torch.testing.assert_close(model.forward_from(site, cache[site]), out)


def test_site_names_are_stable_and_ordered() -> None:
    cnn = build_model(ModelConfig(kind="cnn", width=4, filter_size=2), SPEC, 1, 8)
    assert cnn.sites == ("embed", "layers.0.pre", "layers.0.post", "layers.1.pre",
                         "layers.1.post", "layers.2.pre", "layers.2.post", "head")
    tf = build_model(ModelConfig(kind="transformer", width=8, n_layers=1, n_heads=2), SPEC, 1, 8)
    assert tf.sites == ("embed", "layers.0.attn", "layers.0.post", "head")
    names = [m.name for m in cnn.modules() if isinstance(m, HookPoint)]
    assert names == list(cnn.sites)


def test_cnn_layers_halve_positions_like_the_tree() -> None:
    # filter = stride = s = 2 on 8 = 2**3 leaves: layer i has 8 / 2**(i+1) positions
    model = build_model(ModelConfig(kind="cnn", width=5, filter_size=2), SPEC, 1, 8)
    _, cache = run_with_cache(model, _x(3))
    assert [cache[f"layers.{i}.post"].shape for i in range(3)] == [
        (3, 5, 4), (3, 5, 2), (3, 5, 1)]


def test_cnn_rejects_positions_not_a_power_of_the_filter() -> None:
    with pytest.raises(ValueError, match="filter_size"):
        build_model(ModelConfig(kind="cnn", filter_size=3, n_layers=2), SPEC, 1, 8)


def test_multi_target_output_shape_and_position_readout() -> None:
    mlp = build_model(ModelConfig(kind="mlp", width=8), SPEC, 4, 8)
    assert mlp(_x(2)).shape == (2, 4, 8)
    tf = build_model(ModelConfig(kind="transformer", width=8, n_heads=2, readout="position"),
                     SPEC, 8, 10)
    assert tf(_x(2)).shape == (2, 8, 10)


def test_run_with_cache_rejects_unknown_site_and_filters_names() -> None:
    model = build_model(ModelConfig(kind="mlp", width=8), SPEC, 1, 8)
    with pytest.raises(ValueError, match=r"unknown hook site 'layers\.9\.post'"):
        run_with_cache(model, _x(), ["layers.9.post"])
    _, cache = run_with_cache(model, _x(), ["layers.1.post"])
    assert list(cache) == ["layers.1.post"]
    assert not any(m._forward_hooks for m in model.modules())  # hooks removed


def test_same_generator_seed_gives_identical_weights_without_global_seeding() -> None:
    cfg = ModelConfig(kind="transformer", width=8, n_heads=2)
    a = build_model(cfg, SPEC, 1, 8, torch.Generator().manual_seed(3))
    torch.rand(10)  # consuming global randomness must not matter
    b = build_model(cfg, SPEC, 1, 8, torch.Generator().manual_seed(3))
    c = build_model(cfg, SPEC, 1, 8, torch.Generator().manual_seed(4))
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters(),
                                  strict=True):
        torch.testing.assert_close(pa, pb)
        if pa.numel() > 1 and "norm" not in name and pa.std() > 0:
            assert not torch.equal(pa, pc), name


def test_residual_adds_its_input() -> None:
    block = Residual(torch.nn.Linear(3, 3))
    x = torch.randn(2, 3)
    torch.testing.assert_close(block(x), x + block.inner(x))


def test_real_inputs_are_read_in_linearly() -> None:
    spec = input_spec((5, 4, 4), False, 0)  # images (n, H, W) of floats
    assert spec == InputSpec("real", 16, shape=(4, 4))
    for kind in ("mlp", "cnn", "transformer"):
        cfg = ModelConfig(kind=kind, width=8, n_heads=2, filter_size=2, n_layers=4)
        out = build_model(cfg, spec, 1, 3)(torch.rand(5, 4, 4))
        assert out.shape == (5, 3)


def test_raw_padding_minus_one_reads_as_the_padding_id() -> None:
    model = build_model(ModelConfig(kind="mlp", width=8), SPEC, 1, 8).eval()
    x = _x(3)
    x[:, 5:] = -1  # padded tail as stored in a file
    padded = x.clone()
    padded[:, 5:] = 8  # the padding id: data vocab 8 = SPEC.vocab_size - 2
    torch.testing.assert_close(model(x), model(padded))
