"""3-d CNN (`model.kind = "cnn3d"`) on simple cubic percolation volumes: shapes, hook
names, the tail contract, the lattice-dimension checks, and `tmr generate` followed by
`tmr train-and-probe` on a tiny cubic dataset through the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from generators import percolation
from tmr.cli import app
from tmr.hooks import run_with_cache
from tmr.models import HookedModel, InputSpec, ModelConfig, build_model, input_spec
from tmr.train import load_run
from tmr.train.data_adapter import lattice_dim

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
runner = CliRunner()


def _model(shape: tuple[int, ...], kind: str = "tokens", spatial_dims: int = 0,
           model_kind: str = "cnn3d", seed: int = 0, **cfg: Any) -> HookedModel:
    spec = InputSpec(kind, math.prod(shape), 4 if kind == "tokens" else 0, shape, spatial_dims)
    return build_model(ModelConfig(kind=model_kind, width=5, **cfg), spec, 1, 3,
                       torch.Generator().manual_seed(seed))


def _x(shape: tuple[int, ...], kind: str, n: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.randint(0, 2, (n, *shape), generator=g) if kind == "tokens"
            else torch.rand(n, *shape, generator=g))


def test_cnn3d_halves_every_side_per_layer_with_the_usual_site_names() -> None:
    model = _model((8, 8, 8), spatial_dims=3)
    assert model.sites == ("embed", "layers.0.pre", "layers.0.post", "layers.1.pre",
                           "layers.1.post", "layers.2.pre", "layers.2.post", "head")
    assert sum(isinstance(m, torch.nn.Conv3d) for m in model.modules()) == 3
    out, cache = run_with_cache(model, _x((8, 8, 8), "tokens", 2))
    # one-hot of 0/1 plus pad and mask ids: 4 channels on the 8^3 grid
    assert cache["embed"].shape == (2, 4, 8, 8, 8)
    assert [tuple(cache[f"layers.{i}.post"].shape) for i in range(3)] == [
        (2, 5, 4, 4, 4), (2, 5, 2, 2, 2), (2, 5, 1, 1, 1)]  # floor(log2 8) = 3 layers
    assert out.shape == (2, 3)


@pytest.mark.parametrize(("shape", "kind"), [((8, 8, 8), "tokens"), ((3, 8, 8, 8), "tokens"),
                                             ((8, 8, 8, 2), "real"), ((9, 8, 7), "real")])
def test_cnn3d_tail_from_every_site_reproduces_the_output(shape: tuple[int, ...],
                                                          kind: str) -> None:
    model = _model(shape, kind)
    x = _x(shape, kind)
    out, cache = run_with_cache(model, x)
    for site in model.sites:
        torch.testing.assert_close(model.tail(site)(cache[site]), out)
        torch.testing.assert_close(model.forward_from(site, cache[site]), out)
    # flattened rows (what the data adapter feeds) give the same output
    torch.testing.assert_close(model(x.reshape(len(x), -1)), out)


def test_cnn3d_channels_last_and_first_read_the_same_sites() -> None:
    x = torch.rand(3, 8, 8, 8, 2)  # (n, D, H, W, C)
    last = _model((8, 8, 8, 2), "real")
    first = _model((2, 8, 8, 8), "real")
    first.load_state_dict(last.state_dict())
    torch.testing.assert_close(last(x), first(x.movedim(-1, 1)))


def test_cnn3d_weights_come_from_the_generator() -> None:
    a, b = _model((4, 4, 4), seed=3), _model((4, 4, 4), seed=3)
    c = _model((4, 4, 4), seed=4)
    for (name, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters(),
                               strict=True):
        torch.testing.assert_close(p, q)
        assert not torch.equal(p, r), name


@pytest.mark.parametrize(("shape", "spatial", "model_kind", "match"), [
    # percolation hypercubic d = 4 site and d = 5 bond lattices, declared by the data
    ((4, 4, 4, 4), 4, "cnn3d", "the data are 4-d lattices.*model.kind='mlp' or 'transformer'"),
    ((5, 3, 3, 3, 3, 3), 5, "cnn3d", "the data are 5-d lattices.*dim <= 3"),
    ((4, 4, 4, 4), 4, "cnn2d", "the data are 4-d lattices"),
    # a small cubic lattice would otherwise pass for a 4-channel image
    ((4, 4, 4), 3, "cnn2d", "3-d lattices.*use model.kind='cnn3d'"),
    ((8, 8), 2, "cnn3d", "2-d lattices.*use model.kind='cnn2d'"),
    # undeclared shapes
    ((8, 8), 0, "cnn3d", r"needs samples of shape \(D, H, W\).*fit model.kind='cnn2d'"),
    ((9, 9, 9), 0, "cnn2d", "channel axis.*3-d volumes use model.kind='cnn3d'"),
    ((9, 9, 9, 9), 0, "cnn3d", "channel axis.*4-d lattices, no grid CNN"),
    ((2, 5, 5, 5, 5), 0, "cnn3d", "no grid CNN convolves more than 3 axes"),
    ((8, 8, 8), 3, "cnn3d", "at least 16 sites a side"),  # n_layers = 4 below
])
def test_grid_cnns_reject_the_wrong_dimension_naming_the_fix(
        shape: tuple[int, ...], spatial: int, model_kind: str, match: str) -> None:
    extra = {"n_layers": 4} if "16 sites" in match else {}
    with pytest.raises(ValueError, match=match):
        _model(shape, spatial_dims=spatial, model_kind=model_kind, **extra)


def test_percolation_worlds_declare_their_lattice_dimension() -> None:
    cubic = percolation.make_world(lattice="cubic", size=4, n_levels=2)
    hyper = percolation.make_world(lattice="hypercubic", dim=4, size=3, n_levels=2, kind="bond")
    assert lattice_dim(cubic) == 3 and lattice_dim(hyper) == 4
    assert lattice_dim(object()) == 0
    spec = input_spec((10, 4, 3, 3, 3, 3), True, 2, lattice_dim(hyper))  # bond: (n, 4, L^4)
    assert spec.spatial_dims == 4 and spec.shape == (4, 3, 3, 3, 3)
    with pytest.raises(ValueError, match="spatial_dims=3"):
        InputSpec("real", 16, shape=(4, 4), spatial_dims=3)


# ----------------------------------------------------------------------------- CLI

def _generate(tmp_path: Path, *sets: str) -> Path:
    out = tmp_path / "cubic.h5"
    args = ["generate", str(CONFIGS / "percolation_cubic.toml"), "--out", str(out),
            "--n-samples", "160", "--set", "generator.size=8", "--set", "generator.n_levels=4"]
    for s in sets:
        args += ["--set", s]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return out


FAST = ("device='cpu'", "model.width=4", "optim.steps=20", "optim.eval_every=10",
        "optim.batch_size=32", "probe.max_samples=64", "probe.inner_folds=2",
        "probe.ridge_grid=[0.01, 1.0]")


def _train(tmp_path: Path, data: Path, *extra: str, out: str = "run") -> Any:
    args = ["train-and-probe", str(CONFIGS / "train_percolation_cnn3d.toml"), "--data",
            str(data), "--out", str(tmp_path / out)]
    for s in (*FAST, *extra):
        args += ["--set", s]
    return runner.invoke(app, args)


def test_cli_generates_a_cubic_dataset_then_trains_and_probes_a_cnn3d(tmp_path: Path) -> None:
    res = _train(tmp_path, _generate(tmp_path))
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "run/config.json").read_text())
    assert record["input"]["shape"] == [8, 8, 8] and record["input"]["spatial_dims"] == 3
    assert record["n_classes"] == 4  # the p-bin over a 4-rung ladder
    with (tmp_path / "run/probe_scores.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] == "accuracy"
                and r["split"] == "test"]
    # every layer (floor(log2 8) = 3) and the embedding, against every cluster level
    assert {r["site"] for r in rows} == {"embed", "layers.0.post", "layers.1.post",
                                         "layers.2.post"}
    assert len({r["level"] for r in rows}) == 4
    assert all(r["level"].startswith("clusters_p") for r in rows)
    for r in rows:  # one pooled label per volume: n = held-out volumes
        assert 0.0 <= float(r["value"]) <= 1.0 and 0 < int(r["n"]) <= 16
    model, _, _ = load_run(tmp_path / "run")
    x = torch.randint(0, 2, (2, 8, 8, 8))
    _, cache = run_with_cache(model, x)
    assert cache["layers.0.post"].shape == (2, 4, 4, 4, 4)
    for site in model.sites:
        torch.testing.assert_close(model.tail(site)(cache[site]), model(x))
    # Conv3d / AvgPool3d tails are certified (CROWN), not only attacked
    res = runner.invoke(app, ["bound", str(tmp_path / "run"), "--site", "layers.0.post",
                                   "--keep", "4", "--eps", "0.5", "--n-inputs", "16"])
    assert res.exit_code == 0, res.output
    assert "certified" in res.output and "empirical only" not in res.output


def test_cli_rejects_a_4d_lattice_for_a_cnn3d_in_one_line(tmp_path: Path) -> None:
    data = _generate(tmp_path, "generator.lattice='hypercubic'", "generator.dim=4",
                     "generator.size=4")
    res = _train(tmp_path, data)
    assert res.exit_code == 2
    assert "4-d lattices" in res.output and "model.kind='mlp'" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "run/model.pt").exists()
    # the same file trains with a model that reads any shape
    res = _train(tmp_path, data, "model.kind='mlp'", out="mlp")
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "mlp/config.json").read_text())
    assert record["input"]["shape"] == [4, 4, 4, 4] and record["input"]["spatial_dims"] == 4
