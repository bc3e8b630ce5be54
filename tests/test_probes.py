"""Probes: known answers (planted features, chance), control tasks, invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tmr.models import InputSpec, ModelConfig, build_model
from tmr.probes import (
    COLUMNS,
    MEAN_POSITION,
    ProbeConfig,
    balanced_accuracy,
    collect_activations,
    control_labels,
    group_split,
    match_sites,
    probe_grid,
    type_ids,
)

CFG = ProbeConfig(control=False, group_split=False)


def _value(rows: list[dict], level: str, metric: str, split: str = "test",
           position: object = MEAN_POSITION) -> float:
    (v,) = [r["value"] for r in rows if r["level"] == level and r["metric"] == metric
            and r["split"] == split and r["position"] == position]
    return float(v)


def test_balanced_accuracy_known_values() -> None:
    y = torch.tensor([0, 0, 0, 1])
    assert balanced_accuracy(y, torch.tensor([0, 0, 0, 0])) == 0.5  # majority guess
    assert balanced_accuracy(y, y) == 1.0
    assert balanced_accuracy(y, torch.tensor([0, 0, 1, 1])) == pytest.approx((2 / 3 + 1) / 2)


def test_probe_recovers_a_planted_linear_feature() -> None:
    rng = np.random.default_rng(0)
    h = rng.normal(size=(2000, 20))  # (n, d)
    y = np.argmax(h @ rng.normal(size=(20, 3)), axis=1)  # linearly separable, 3 classes
    rows = probe_grid({"h": h}, {"y": y[:, None]}, np.arange(2000)[:, None], CFG,
                      step=0, seed=0, rng=1)
    # a least-squares one-hot classifier on exactly linear classes: well above 0.9
    assert _value(rows, "y", "accuracy") > 0.9


def test_constant_positions_are_left_out_of_the_mean() -> None:
    gen = np.random.default_rng(4)
    y = gen.integers(0, 3, 2000)
    h = np.eye(3)[y] + 0.01 * gen.normal(size=(2000, 3))
    level = np.stack([y, np.zeros_like(y), 1 - (y > 0)], axis=1)  # position 1 is constant
    rows = probe_grid({"h": h}, {"y": level}, np.arange(2000)[:, None], CFG,
                      step=0, seed=0, rng=1)
    acc = {r["position"]: r["value"] for r in rows if r["metric"] == "accuracy"}
    assert acc[1] == 1.0  # the constant position scores 1 trivially ...
    assert acc["mean"] == pytest.approx((acc[0] + acc[2]) / 2)  # ... and is not averaged
    const = probe_grid({"h": h}, {"root": np.zeros((2000, 2), int)}, np.arange(2000)[:, None],
                       CFG, step=0, seed=0, rng=1)
    assert [r["value"] for r in const if r["position"] == "mean"
            and r["metric"] == "accuracy"] == [1.0]  # all constant: the mean is kept


def test_probe_scores_chance_on_independent_labels() -> None:
    rng = np.random.default_rng(1)
    h = rng.normal(size=(2000, 20))
    y = rng.integers(0, 4, size=(2000, 1))
    rows = probe_grid({"h": h}, {"y": y}, np.arange(2000)[:, None], CFG, step=0, seed=0, rng=2)
    # 500 held-out samples: std of a 4-class accuracy near 1/4 is 0.019; 3.5 sigma
    assert abs(_value(rows, "y", "accuracy") - 0.25) < 0.07


def test_control_task_is_chance_for_a_narrow_probe_but_memorised_by_a_wide_one() -> None:
    rng = np.random.default_rng(2)
    n, n_types = 2000, 500
    types = rng.integers(0, n_types, n)  # (n,) every type seen ~4 times
    y = (types % 4)[:, None]  # the real label: a function of the type
    narrow = rng.normal(size=(n_types, 3))[types]  # (n, 3) a 3-d code of the type
    wide = np.eye(n_types)[types]  # (n, 500) one-hot of the type
    cfg = ProbeConfig(group_split=False)
    rows = probe_grid({"narrow": narrow, "wide": wide}, {"y": y}, types[:, None], cfg,
                      step=0, seed=0, rng=3)
    ctrl = {r["site"]: r["value"] for r in rows if r["metric"] == "control_accuracy"
            and r["position"] == MEAN_POSITION}
    # 500 held-out samples, 4 classes: std 0.019; a 3-d linear code cannot fit 500
    # random type labels, so the narrow control stays within ~4 sigma of 1/4
    assert ctrl["narrow"] < 0.25 + 0.08
    # the one-hot probe memorises each type's label; a test type was seen in training
    # with probability 1 - exp(-3) = 0.95, so control accuracy is far above chance
    assert ctrl["wide"] > 0.7


def test_control_labels_are_fixed_per_type_and_follow_the_marginal() -> None:
    rng = np.random.default_rng(3)
    types = rng.integers(0, 5000, 40000)
    y = rng.choice(3, p=[0.6, 0.3, 0.1], size=(40000, 2))
    ctrl = control_labels(y, types, rng)
    for t in range(20):
        assert len(np.unique(ctrl[types == t, 0])) <= 1
    # 5000 types drawn from the marginal: std of a frequency ~0.007; 5 sigma
    freq = np.bincount(ctrl[np.unique(types, return_index=True)[1], 1], minlength=3) / 5000
    np.testing.assert_allclose(freq, [0.6, 0.3, 0.1], atol=0.035)


def test_probe_scores_invariant_to_orthogonal_rotation_of_the_layer() -> None:
    rng = np.random.default_rng(4)
    h = rng.normal(size=(800, 12)) * rng.uniform(0.1, 3, 12) + 5
    y = np.stack([np.argmax(h @ rng.normal(size=(12, 3)), 1), rng.integers(0, 2, 800)], 1)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))  # random orthogonal matrix
    x = rng.integers(0, 50, size=(800, 2))
    cfg = ProbeConfig()
    a = probe_grid({"h": h}, {"y": y}, x, cfg, step=0, seed=0, rng=5)
    b = probe_grid({"h": h @ q}, {"y": y}, x, cfg, step=0, seed=0, rng=5)
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert ra["value"] == pytest.approx(rb["value"], abs=1e-9), ra


def test_rows_have_the_documented_columns_and_consistent_means() -> None:
    rng = np.random.default_rng(5)
    levels = {"root": rng.integers(0, 2, (600, 1)), "leaves": rng.integers(0, 3, (600, 4))}
    x = levels["leaves"]
    rows = probe_grid({"a": rng.normal(size=(600, 6))}, levels, x, ProbeConfig(), step=7,
                      seed=9, rng=0)
    assert all(set(r) == set(COLUMNS) for r in rows)
    assert {r["split"] for r in rows} == {"test", "group"}
    assert not [r for r in rows if r["split"] == "group" and r["level"] == "root"]
    per_pos = [_value(rows, "leaves", "selectivity", position=p) for p in range(4)]
    assert _value(rows, "leaves", "selectivity") == pytest.approx(np.mean(per_pos))
    for p in range(4):
        assert _value(rows, "leaves", "selectivity", position=p) == pytest.approx(
            _value(rows, "leaves", "accuracy", position=p)
            - _value(rows, "leaves", "control_accuracy", position=p))


def test_group_split_holds_out_whole_groups() -> None:
    groups = np.random.default_rng(6).integers(0, 30, 1000)
    train, test = group_split(groups, 0.25, np.random.default_rng(0))
    assert not set(groups[train]) & set(groups[test])
    assert 0.2 < len(test) / 1000 < 0.45
    assert len(np.union1d(train, test)) == 1000


def test_type_ids_number_distinct_rows() -> None:
    x = np.array([[1, 2], [3, 4], [1, 2], [0, 0]])
    ids = type_ids(x)
    assert ids[0] == ids[2] and len(set(ids)) == 3


def test_match_sites_globs_in_forward_order_and_rejects_unknown() -> None:
    sites = ("embed", "layers.0.pre", "layers.0.post", "layers.1.post", "head")
    assert match_sites(["head", "layers.*.post"], sites) == [
        "layers.0.post", "layers.1.post", "head"]
    with pytest.raises(ValueError, match="matches no site"):
        match_sites(["layers.5.post"], sites)


def test_collect_activations_flattens_per_sample_in_batches() -> None:
    model = build_model(ModelConfig(kind="cnn", width=4, filter_size=2),
                        InputSpec("tokens", 8, 10), 1, 3, torch.Generator().manual_seed(0))
    x = torch.randint(0, 8, (10, 8))
    acts = collect_activations(model, x, ["embed", "layers.0.post"], batch_size=3)
    assert acts["embed"].shape == (10, 80) and acts["layers.0.post"].shape == (10, 16)
    full = collect_activations(model, x, ["layers.0.post"], batch_size=100)
    np.testing.assert_allclose(acts["layers.0.post"], full["layers.0.post"], rtol=1e-6)
