"""2-d CNN on lattices/images, pooled per-pixel probe levels, aux task targets."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from tmr.hooks import run_with_cache
from tmr.models import InputSpec, ModelConfig, build_model


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    # tiny models on 2 shared cores: one torch thread avoids OpenMP spin-waiting
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _grid_model(shape: tuple[int, ...], kind: str, **cfg: Any) -> torch.nn.Module:
    spec = InputSpec(kind, math.prod(shape), 4 if kind == "tokens" else 0, shape)
    return build_model(ModelConfig(kind="cnn2d", width=5, **cfg), spec, 1, 3,
                       torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("shape", "kind"), [((8, 8), "tokens"), ((3, 8, 8), "tokens"),
                                             ((8, 8, 3), "real"), ((9, 7), "real")])
def test_cnn2d_tail_from_every_site_reproduces_the_output(shape: tuple[int, ...],
                                                          kind: str) -> None:
    model = _grid_model(shape, kind)
    g = torch.Generator().manual_seed(1)
    x = (torch.randint(0, 2, (4, *shape), generator=g) if kind == "tokens"
         else torch.rand(4, *shape, generator=g))
    out, cache = run_with_cache(model, x)
    for site in model.sites:
        torch.testing.assert_close(model.tail(site)(cache[site]), out)
        torch.testing.assert_close(model.forward_from(site, cache[site]), out)
    # flattened rows (what the data adapter feeds) give the same output
    torch.testing.assert_close(model(x.reshape(4, -1)), out)


def test_cnn2d_layers_halve_the_grid_like_block_spins() -> None:
    model = _grid_model((16, 16), "real", filter_size=2)
    _, cache = run_with_cache(model, torch.rand(2, 16, 16))
    assert model.sites[-1] == "head"
    sizes = [tuple(cache[f"layers.{i}.post"].shape[-2:]) for i in range(4)]
    assert sizes == [(8, 8), (4, 4), (2, 2), (1, 1)]  # floor(log2 16) = 4 layers
    assert cache["embed"].shape == (2, 1, 16, 16)


def test_cnn2d_channels_last_and_first_read_the_same_pixels() -> None:
    x = torch.rand(3, 8, 8, 2)  # (n, H, W, C)
    last = _grid_model((8, 8, 2), "real")
    first = _grid_model((2, 8, 8), "real")
    first.load_state_dict(last.state_dict())
    torch.testing.assert_close(last(x), first(x.movedim(-1, 1)))


def test_cnn2d_rejects_images_smaller_than_its_blocks() -> None:
    with pytest.raises(ValueError, match="at least 16 pixels"):
        _grid_model((8, 8), "real", n_layers=4)
    with pytest.raises(ValueError, match="needs"):
        build_model(ModelConfig(kind="cnn2d"), InputSpec("real", 8, shape=(8,)), 1, 2)
