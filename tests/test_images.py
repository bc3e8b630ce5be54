"""2-d CNN on lattices/images, pooled per-pixel probe levels, aux task targets."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from generators import HierarchicalSample, percolation
from tmr import io
from tmr.config import data_config_from_dict
from tmr.hooks import run_with_cache
from tmr.models import HookedModel, InputSpec, ModelConfig, build_model
from tmr.probe_targets import aux_level, pool_majority, probe_levels
from tmr.probes import MEAN_POSITION, ProbeConfig, balanced_accuracy, probe_grid
from tmr.train import load_run, load_train_config, read_metrics, run
from tmr.train.data_adapter import aux_target


def _grid_model(shape: tuple[int, ...], kind: str, **cfg: Any) -> HookedModel:
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
    with pytest.raises(ValueError, match="at least 16 sites"):
        _grid_model((8, 8), "real", n_layers=4)
    with pytest.raises(ValueError, match="needs"):
        build_model(ModelConfig(kind="cnn2d"), InputSpec("real", 8, shape=(8,)), 1, 2)


# ----------------------------------------------------------------------------- pooling

def test_majority_pooling_on_hand_made_maps() -> None:
    y = np.array([
        [[0, 0], [1, -1]],     # 0 twice, 1 once -> 0
        [[2, 1], [2, 1]],      # tie 1 and 2 -> the smaller, 1
        [[-1, -1], [-1, -1]],  # no valid pixel -> -1
        [[-1, 3], [-1, -1]],   # the only valid pixel -> 3
    ], dtype=np.int16)  # (n, H, W)
    assert pool_majority(y).tolist() == [0, 1, -1, 3]
    assert pool_majority(y).dtype == np.int64


def test_majority_pooling_is_chunk_independent(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(-1, 40, size=(50, 6, 6))  # (n, H, W)
    whole = pool_majority(y)
    monkeypatch.setattr("tmr.probe_targets.COUNT_CELLS", 41 * 3)  # 3 samples per chunk
    np.testing.assert_array_equal(pool_majority(y), whole)


def test_probe_levels_pool_maps_and_code_scalars_of_any_dtype() -> None:
    levels = {"f": np.array([0.5, np.nan, 0.5, 2.0]), "b": np.array([True, False, True, True]),
              "seq": np.array([[1, 2], [3, 4], [5, 6], [7, 8]], dtype=np.uint8),
              "map": np.array([[[1, 1]], [[2, -1]], [[-1, -1]], [[0, 3]]])}
    out = probe_levels(levels)
    assert out["f"].tolist() == [[0], [-1], [0], [1]]  # rank codes, NaN invalid
    assert out["b"].tolist() == [[1], [0], [1], [1]]
    assert out["seq"].shape == (4, 2)  # 1-d per-sample levels stay per position
    assert out["map"].tolist() == [[1], [2], [-1], [0]]
    assert probe_levels(levels, "none")["map"].shape == (4, 2)
    with pytest.raises(ValueError, match=r"probe\.pool"):
        probe_levels(levels, "mean")


def test_probes_drop_invalid_rows_and_report_their_count() -> None:
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 2, n)  # (n,)
    h = np.c_[y + 0.01 * rng.normal(size=n), rng.normal(size=(n, 3))]  # planted feature
    y_missing = np.where(np.arange(n) % 4 == 0, -1, y)  # a quarter invalid
    cfg = ProbeConfig(group_split=False, inner_folds=2, ridge_grid=(0.01,))
    rows = probe_grid({"h": h}, {"full": y, "missing": y_missing}, np.arange(n)[:, None],
                      cfg, step=0, seed=0, rng=1)
    acc = {r["level"]: r for r in rows if r["metric"] == "accuracy"
           and r["position"] == MEAN_POSITION}
    assert acc["full"]["value"] == 1.0 and acc["missing"]["value"] == 1.0
    assert acc["missing"]["n"] < acc["full"]["n"] == 100  # test_fraction 0.25 of 400
    assert balanced_accuracy(torch.tensor([-1, 0, 1]), torch.tensor([5, 0, 0])) == 0.5


# ----------------------------------------------------------------------------- aux targets

def _perc_sample() -> HierarchicalSample:
    world = percolation.make_world(lattice="square", size=8, n_levels=3, rng=0)
    return percolation.sample(world, 30, rng=1, random_x_level=True, site_truth=False)


def test_aux_levels_keep_flags_and_cut_reals_into_equal_count_bins() -> None:
    rng = np.random.default_rng(0)
    flags = rng.random((200, 3, 2)) < 0.5
    np.testing.assert_array_equal(aux_level(flags, 4), flags.reshape(200, 6).astype(int))
    frac = rng.random((200, 3))
    frac[0, 1] = np.nan
    y = aux_level(frac, 4)                                     # (200, 3)
    assert y.shape == (200, 3) and y[0, 1] == -1
    for j in range(3):                                         # 4 bins of 50 (49 + NaN)
        counts = np.bincount(y[y[:, j] >= 0, j], minlength=4)
        assert counts.sum() == (199 if j == 1 else 200) and counts.max() - counts.min() <= 1
        # bins are ordered: every value of bin k is below every value of bin k+1
        for k in range(3):
            assert frac[y[:, j] == k, j].max() < frac[y[:, j] == k + 1, j].min()
    with pytest.raises(ValueError, match="numeric"):
        aux_level(np.array(["a", "b"]), 2)


def test_aux_target_picks_fixed_and_per_sample_entries() -> None:
    s = _perc_sample()
    np.testing.assert_array_equal(aux_target(s, "x_level"), s.aux["x_level"])
    own = aux_target(s, "spans", ("x_level", 0))  # spanning along axis 0 at own p
    expect = [s.aux["spans"][i, s.aux["x_level"][i], 0] for i in range(len(s))]
    np.testing.assert_array_equal(own, expect)
    np.testing.assert_array_equal(aux_target(s, "n_clusters", (-1,)), s.aux["n_clusters"][:, -1])


@pytest.mark.parametrize(("name", "index", "match"), [
    ("nope", (), "not an aux array"), ("spans", (0,), "not one value per sample"),
    ("x_p", (), "integer or boolean"), ("spans", ("x_p", 0), "integer aux"),
    ("x_level", (0,), "more entries")])
def test_aux_target_rejects_bad_names_and_shapes(name: str, index: tuple, match: str) -> None:
    s = _perc_sample()
    with pytest.raises(ValueError, match=match):
        aux_target(s, name, index)


# ----------------------------------------------------------------------------- end to end

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
FAST = ("device=cpu", "model.width=6", "optim.steps=30", "optim.eval_every=15",
        "optim.log_checkpoints=0", "probe.max_samples=96", "probe.inner_folds=2",
        "probe.ridge_grid=[0.01, 1.0]")


def _tiny_run(tmp_path: Path, data_cfg: dict[str, Any], train_toml: str,
              extra: tuple[str, ...] = ()) -> list[dict[str, str]]:
    data = io.write_dataset(tmp_path / "data.h5", data_config_from_dict(data_cfg))
    cfg = load_train_config(CONFIGS / train_toml, (*FAST, *extra))
    run(dataclasses.replace(cfg, data_path=str(data)), tmp_path / "run")
    with (tmp_path / "run/probe_scores.csv").open() as f:
        return list(csv.DictReader(f))


def _mean_accuracy(rows: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["site"], r["level"]): r for r in rows if r["metric"] == "accuracy"
            and r["position"] == MEAN_POSITION and r["split"] == "test"}


def test_percolation_cnn_config_runs_and_probes_pooled_cluster_levels(tmp_path: Path) -> None:
    gen = {"name": "percolation", "lattice": "square", "size": 16, "n_levels": 4,
           "kind": "site", "random_x_level": True, "site_truth": False}
    rows = _tiny_run(tmp_path, {"seed": 0, "n_samples": 400, "generator": gen,
                                "splits": {"test_fraction": 0.3}},
                     "train_percolation_cnn.toml")
    acc = _mean_accuracy(rows)
    levels = {lv for _, lv in acc}
    # the config also probes per-sample ground truth: spanning and largest fraction
    assert {"aux.spans", "aux.largest_fraction"} <= levels
    assert not any(r["split"] == "group" and r["level"].startswith("aux.") for r in rows)
    positions = {r["position"] for r in rows if r["level"] == "aux.spans"}
    assert positions == {"mean", *map(str, range(4 * 2))}  # 4 rungs x 2 axes
    levels -= {"aux.spans", "aux.largest_fraction"}
    assert len(levels) == 4 and all(lv.startswith("clusters_p") for lv in levels)
    assert {s for s, _ in acc} == {"embed", *(f"layers.{i}.post" for i in range(4))}
    for r in acc.values():  # one pooled target per lattice: n = held-out lattices
        assert 0.0 <= float(r["value"]) <= 1.0 and 0 < int(r["n"]) <= 24
    record = json.loads((tmp_path / "run/config.json").read_text())
    assert record["n_classes"] == 4 and record["input"]["shape"] == [16, 16]
    metrics = read_metrics(tmp_path / "run")
    assert metrics[-1]["step"] == 30 and metrics[-1]["test_acc"] is not None


def test_ifs_cnn_config_runs_and_probes_pooled_address_levels(tmp_path: Path) -> None:
    gen = {"name": "ifs", "n_maps": 3, "n_systems": 3, "n_instances": 2, "jitter": 0.05,
           "mode": "images", "image_size": 16, "n_points": 2000, "n_address_levels": 2,
           "soft_levels": 0, "value": "binary"}
    rows = _tiny_run(tmp_path, {"seed": 0, "n_samples": 300, "generator": gen,
                                "splits": {"test_fraction": 0.4}}, "train_ifs_cnn.toml")
    acc = _mean_accuracy(rows)
    assert {lv for _, lv in acc} == {"system", "instance", "address1", "address2"}
    for r in acc.values():
        assert 0.0 <= float(r["value"]) <= 1.0
        assert int(r["n_classes"]) <= (3 if r["level"].startswith("address") else 6)
    # three systems are told apart by their pixels already: the embedding probe scores
    # well above chance 1/3 (a linear read of 256 pixels of distinct attractors)
    assert float(acc[("embed", "system")]["value"]) > 0.6
    model, _, _ = load_run(tmp_path / "run")
    x = torch.rand(2, 16, 16).round()
    _, cache = run_with_cache(model, x)
    for site in model.sites:
        torch.testing.assert_close(model.tail(site)(cache[site]), model(x))


def test_probe_aux_names_an_array_the_file_lacks(tmp_path: Path) -> None:
    gen = {"name": "percolation", "lattice": "square", "size": 8, "n_levels": 2,
           "kind": "site", "random_x_level": True, "site_truth": False}
    with pytest.raises(ValueError, match=r"probe.aux names 'nope'.*largest_fraction"):
        _tiny_run(tmp_path, {"seed": 0, "n_samples": 64, "generator": gen},
                  "train_percolation_cnn.toml", ('probe.aux=["nope"]',))
    assert not (tmp_path / "run/model.pt").exists()
