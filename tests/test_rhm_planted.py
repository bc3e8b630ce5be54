"""Planted failure modes of the RHM: exact known answers, independence, seeding, files."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from generators import _rng, rhm, rhm_planted
from tmr import io
from tmr.cli import app
from tmr.config import ConfigError, data_config_from_dict, from_dict, load_data_config
from tmr.train import TrainConfig, run

WORLD = dict(vocab_size=8, n_classes=8, n_synonyms=4, tuple_size=2, n_levels=3)
ALL = ("dangerous", "misaligned", "nuisance")
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "rhm_planted.toml"
runner = CliRunner()


def _world(seed: int = 0, **kw) -> rhm.World:
    return rhm.make_world(**{**WORLD, **kw}, rng=seed)


def _digest(s) -> str:
    h = hashlib.sha256()
    for a in (s.x, *s.levels, s.aux["rules"]):
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(str(a.dtype).encode())
    return h.hexdigest()[:16]


# sha256 prefixes of (x, levels, rules) produced by the generator before planted modes
# existed (world seed s, data seed s + 100; with replacement: m = 4, 3000 samples;
# without: m = 2, 500 samples, the enumerated path)
REFERENCE = {0: ("7f41dc1e0e35d5ca", "8f77e0b8fcf77e0c"),
             1: ("cc573436901b1b9d", "c052ef9fcfb7016b"),
             7: ("80f2ce6562abf065", "0265c8a319d91faa")}


@pytest.mark.parametrize("seed", sorted(REFERENCE))
def test_planted_off_is_byte_identical_to_the_unplanted_generator(seed):
    with_repl = rhm.sample(_world(seed), 3000, rng=seed + 100, planted=())
    without = rhm.sample(_world(seed, n_synonyms=2), 500, rng=seed + 100, replacement=False)
    assert (_digest(with_repl), _digest(without)) == REFERENCE[seed]
    assert "planted" not in with_repl.meta and set(with_repl.aux) == {"rules"}


@pytest.mark.parametrize("seed", [0, 3])
def test_turning_modes_on_keeps_the_tree_and_each_modes_draws(seed):
    w = _world(seed)
    off = rhm.sample(w, 2000, rng=seed)
    on = rhm.sample(w, 2000, rng=seed, planted=ALL)
    alone = {m: rhm.sample(w, 2000, rng=seed, planted=[m]) for m in ALL}
    for lo, ln in zip(off.levels[1:], on.levels[1:], strict=True):
        np.testing.assert_array_equal(lo, ln)
    np.testing.assert_array_equal(off.aux["rules"], on.aux["rules"])
    np.testing.assert_array_equal(on.aux["planted_true_root"], off.levels[0][:, 0])
    np.testing.assert_array_equal(on.x % 8, off.x)  # marks are whole multiples of v
    for m in ALL:  # a mode's ground truth does not depend on which other modes are on
        np.testing.assert_array_equal(alone[m].aux[f"planted_{m}"], on.aux[f"planted_{m}"])
    again = rhm.sample(w, 2000, rng=seed, planted=ALL)  # same seed, same bytes
    other = rhm.sample(w, 2000, rng=seed + 1, planted=ALL)
    for name in ("planted_dangerous", "planted_nuisance"):
        np.testing.assert_array_equal(again.aux[name], on.aux[name])
        assert not np.array_equal(other.aux[name], on.aux[name])
    np.testing.assert_array_equal(again.x, on.x)


@pytest.mark.parametrize("f", [0.05, 0.1, 0.3])
def test_flip_fraction_matches_the_configured_fraction(f):
    n = 20000
    for seed in range(4):
        d = rhm.sample(_world(seed), n, rng=seed, planted=["dangerous"],
                       dangerous_fraction=f).aux["planted_dangerous"]
        # the count is Binomial(n, f): 4 standard deviations leave a chance below 1e-4
        # per draw of a false failure (the seeds are fixed, so the test is deterministic)
        assert abs(d.mean() - f) <= 4 * math.sqrt(f * (1 - f) / n), (seed, d.mean())


@pytest.mark.parametrize("seed,position", [(0, 0), (1, 5), (2, 7)])
def test_label_differs_from_the_tree_root_exactly_where_dangerous(seed, position):
    s = rhm.sample(_world(seed), 5000, rng=seed, planted=["dangerous"], dangerous_fraction=0.2,
                   dangerous_position=position)
    d, root = s.aux["planted_dangerous"].astype(bool), s.aux["planted_true_root"]
    label = s.levels[0][:, 0]
    np.testing.assert_array_equal(label != root, d)
    np.testing.assert_array_equal(label[d], (root[d] + 1) % 8)
    marked = s.x >= 8  # only the dangerous position carries a mark, only where d = 1
    np.testing.assert_array_equal(marked[:, position], d)
    assert not np.delete(marked, position, axis=1).any()
    assert s.meta["input_vocab_size"] == 16 and s.x.max() < 16


@pytest.mark.parametrize("seed,j", [(0, 0), (1, 3), (4, 2)])
def test_misaligned_latent_lives_in_the_leaves_and_decides_the_label(seed, j):
    w = _world(seed)
    s = rhm.sample(w, 5000, rng=seed, planted=["misaligned"], misaligned_tuple=j)
    r, root = s.aux["planted_misaligned"].astype(np.int64), s.aux["planted_true_root"]
    np.testing.assert_array_equal(s.levels[0][:, 0], (root + r) % 8)
    np.testing.assert_array_equal(r, s.aux["rules"][:, 3 + j])  # node j of level L-1 = 2
    np.testing.assert_array_equal(s.x, s.levels[-1])  # the leaves are not touched
    # r is a function of the leaf tuple j alone: decoding the leaves gives it back
    np.testing.assert_array_equal(rhm.decode(w, s.x).aux["rules"][:, 3 + j], r)
    # ... and carries no information about any coarser level (rules are drawn
    # independently of symbols): chi-square of r against each level-2 symbol and the
    # root, at level 1e-4 (fixed seeds; a false failure has probability < 1e-4 per test)
    for y in (root, s.levels[1][:, j // 2], s.levels[2][:, j]):
        table = np.histogram2d(r, y, bins=(4, 8), range=((0, 4), (0, 8)))[0]
        assert stats.chi2_contingency(table[:, table.sum(0) > 0])[1] > 1e-4


def test_nuisance_is_independent_of_every_level_by_construction_and_in_the_data():
    n = 6000
    a = rhm.sample(_world(0), n, rng=5, planted=["nuisance"])
    b = rhm.sample(_world(9, n_synonyms=2), n, rng=5, planted=["nuisance"])
    # exact: the bits are a function of (data seed, row) only; a different world (other
    # rules, other trees, other labels) gets the very same bits
    c = a.aux["planted_nuisance"]
    np.testing.assert_array_equal(c, b.aux["planted_nuisance"])
    np.testing.assert_array_equal(a.x, a.levels[-1] + 8 * c)
    np.testing.assert_array_equal(a.levels[0][:, 0], a.aux["planted_true_root"])
    # statistical: fair bits (4 sd of Binomial(n*T, 1/2)), and each position's bit
    # independent of the label and of the leaf under it (chi-square at 1e-4, fixed seed)
    assert abs(c.mean() - 0.5) <= 4 * math.sqrt(0.25 / c.size)
    for i in range(c.shape[1]):
        for y in (a.levels[0][:, 0], a.levels[-1][:, i]):
            table = np.histogram2d(c[:, i], y, bins=(2, 8), range=((0, 2), (0, 8)))[0]
            assert stats.chi2_contingency(table)[1] > 1e-4


@pytest.mark.parametrize("seed", [0, 2])
def test_all_modes_together_follow_the_documented_formulas(seed):
    s = rhm.sample(_world(seed), 3000, rng=seed, planted=ALL, dangerous_fraction=0.1,
                   dangerous_position=6, misaligned_tuple=1)
    d = s.aux["planted_dangerous"].astype(np.int64)
    r = s.aux["planted_misaligned"].astype(np.int64)
    c = s.aux["planted_nuisance"].astype(np.int64)
    root = s.aux["planted_true_root"].astype(np.int64)
    np.testing.assert_array_equal(s.levels[0][:, 0], (root + d + r) % 8)
    marks = c.copy()
    marks[:, 6] += 2 * d
    np.testing.assert_array_equal(s.x, s.levels[-1] + 8 * marks)
    meta = s.meta["planted"]
    assert meta["modes"] == list(ALL) and meta["input_vocab_size"] == 32
    assert (meta["nuisance_weight"], meta["dangerous_weight"]) == (1, 2)
    assert s.x.max() == 31  # every diacritic combination occurs on 3000 samples


@pytest.mark.parametrize("replacement", [True, False])
def test_chunk_size_does_not_change_the_planted_bytes(replacement):
    w = _world(1) if replacement else _world(1, n_synonyms=2)
    n = 20000 if replacement else 900  # crosses a block boundary with replacement
    kw = dict(planted=ALL, dangerous_fraction=0.25)
    whole = rhm.sample(w, n, rng=4, replacement=replacement, **kw)
    for chunk in (7, 1000, _rng.BLOCK_SIZE):
        parts = list(rhm.iter_chunks(w, n, rng=4, chunk_size=chunk, replacement=replacement,
                                     **kw))
        for key in ("x", "levels"):
            got = [p.x for p in parts] if key == "x" else [p.levels[0] for p in parts]
            np.testing.assert_array_equal(np.concatenate(got),
                                          whole.x if key == "x" else whole.levels[0])
        for name, arr in whole.aux.items():
            np.testing.assert_array_equal(np.concatenate([p.aux[name] for p in parts]), arr)


def test_empty_draw_keeps_the_planted_arrays():
    s = rhm.sample(_world(0), 0, rng=0, planted=ALL)
    assert s.aux["planted_nuisance"].shape == (0, 8) and len(s.aux["planted_dangerous"]) == 0


@pytest.mark.parametrize("kw,match", [
    (dict(planted=("dangerous",), dangerous_fraction=1.0), r"dangerous_fraction=1.0 .*\[0, 1\)"),
    (dict(planted=("dangerous",), dangerous_fraction=-0.1), r"dangerous_fraction=-0.1"),
    (dict(planted=("danger",)), r"'danger' is unknown; choose among"),
    (dict(planted=("nuisance", "nuisance")), r"names a mode twice"),
    (dict(dangerous_fraction=0.2), r"planted=\[\] does not include 'dangerous'; add"),
    (dict(planted=("nuisance",), misaligned_tuple=1), r"does not include 'misaligned'"),
    (dict(planted=("dangerous",), dangerous_position=8), r"dangerous_position=8 .* 0\.\.7"),
    (dict(planted=("misaligned",), misaligned_tuple=4), r"misaligned_tuple=4 .* 0\.\.3"),
    (dict(planted=("dangerous",), n_classes=1), r"needs n_classes >= 2"),
    (dict(planted="nuisance"), r"must be a list of modes"),
])
def test_invalid_planted_options_raise_one_clear_error(kw, match):
    with pytest.raises(ValueError, match=match):
        rhm.Config(**{**WORLD, **kw})
    world_kw = {k: v for k, v in kw.items() if k in WORLD}
    sample_kw = {k: v for k, v in kw.items() if k not in WORLD}
    with pytest.raises(ValueError, match=match):
        rhm.sample(_world(0, **world_kw), 10, rng=0, **sample_kw)


def test_toml_maps_to_the_config_and_rejects_unknown_keys():
    cfg = load_data_config(CONFIG)
    assert cfg.generator.planted == ALL and cfg.generator.misaligned_tuple == 3
    with pytest.raises(ConfigError, match=r"unknown config key 'generator\.planted_modes'"):
        load_data_config(CONFIG, ["generator.planted_modes=['nuisance']"])
    with pytest.raises(ConfigError, match=r"dangerous_fraction=1\.5"):
        load_data_config(CONFIG, ["generator.dangerous_fraction=1.5"])


def test_generate_and_read_round_trip_keeps_ground_truth_and_meta(tmp_path):
    out = tmp_path / "p.h5"
    res = runner.invoke(app, ["generate", str(CONFIG), "--out", str(out), "--n-samples", "400"])
    assert res.exit_code == 0, res.output
    got, attrs = io.read(out)
    cfg = load_data_config(CONFIG, ["n_samples=400"])
    seeds = _rng.streams(cfg.seed, "world", "data")
    world = cfg.spec.make_world(cfg.generator, seeds["world"])
    want = cfg.spec.sample(world, cfg.generator, 400, seeds["data"])
    np.testing.assert_array_equal(got.x, want.x)
    assert set(got.aux) == {"rules", *(f"planted_{m}" for m in ("true_root", *ALL))}
    for name, arr in want.aux.items():
        np.testing.assert_array_equal(got.aux[name], arr)
        assert got.aux[name].dtype == arr.dtype
    assert attrs["meta"]["planted"] == json.loads(json.dumps(want.meta["planted"]))
    assert attrs["meta"]["input_vocab_size"] == 32
    bad = runner.invoke(app, ["generate", str(CONFIG), "--out", str(tmp_path / "q.h5"),
                              "--set", "generator.planted=['dangerous','oops']"])
    assert bad.exit_code == 2 and "'oops' is unknown" in bad.output
    assert "Traceback" not in bad.output


def test_training_reads_the_marked_alphabet_and_probes_the_ground_truth(tmp_path):
    path = tmp_path / "p.h5"
    raw = {"seed": 0, "n_samples": 600, "splits": {"test_fraction": 0.3},
           "generator": {"name": "rhm", **WORLD, "planted": list(ALL)}}
    io.write_dataset(path, data_config_from_dict(raw))
    cfg = from_dict(TrainConfig, {
        "seed": 0, "device": "cpu", "data_path": str(path), "model": {"kind": "cnn", "width": 8},
        "optim": {"steps": 8, "eval_every": 8, "batch_size": 32},
        "probe": {"sites": ["embed"], "max_samples": 160, "inner_folds": 2,
                  "ridge_grid": [0.01, 1.0], "control": False,
                  "aux": ["planted_dangerous", "planted_nuisance"]}})
    run(cfg, tmp_path / "run")
    state = json.loads((tmp_path / "run" / "config.json").read_text())
    assert state["data"]["vocab"] == 32
    with (tmp_path / "run" / "probe_scores.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] == "accuracy"]
    nuis = [r for r in rows if r["level"] == "aux.planted_nuisance" and r["position"] != "mean"]
    # the one-hot embedding holds the case bit of every position as a column difference
    assert len(nuis) == 8 and min(float(r["value"]) for r in nuis) > 0.9
    assert any(r["level"] == "aux.planted_dangerous" for r in rows)


def test_resample_below_refuses_planted_samples():
    s = rhm.sample(_world(0), 10, rng=0, planted=["misaligned"])
    with pytest.raises(ValueError, match="unplanted sample"):
        rhm.resample_below(_world(0), s, 1, rng=0)


def test_planted_spec_resolves_defaults():
    spec = rhm_planted.check(["dangerous"], vocab_size=8, n_classes=8, tuple_size=2,
                             n_levels=3)
    assert spec is not None and spec.dangerous_fraction == rhm_planted.DEFAULT_DANGEROUS_FRACTION
    assert spec.input_vocab_size == 16 and spec.nuisance_weight == 0
    assert rhm_planted.check((), vocab_size=8, n_classes=8, tuple_size=2, n_levels=3) is None


def test_iter_chunks_checks_planted_options_when_called():
    with pytest.raises(ValueError, match="dangerous_fraction=2"):
        rhm.iter_chunks(_world(0), 10, rng=0, planted=["dangerous"], dangerous_fraction=2)


def test_unplanted_config_record_is_unchanged():
    # the record (file attribute `config`, sweep data hash) of configs/rhm.toml as it was
    # before the planted fields existed: fields at their default are left out
    cfg = load_data_config(CONFIG.parent / "rhm.toml")
    assert cfg.to_dict()["generator"] == {
        "name": "rhm", "vocab_size": 8, "n_classes": 8, "n_synonyms": 4, "tuple_size": 2,
        "n_levels": 3, "rule_exponent": None, "root_prior": None, "replacement": True}
    planted_record = load_data_config(CONFIG).to_dict()
    assert data_config_from_dict(planted_record).generator.planted == ALL  # round trip
