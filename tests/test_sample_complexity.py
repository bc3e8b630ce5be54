"""Fixed-size splits drawn without replacement, their limit check, sweep cases, the
P* fit of sample-complexity curves and the RHM synonym exchange behind the
synonymic sensitivity."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tmr.metrics as M
from generators import rhm
from generators.rhm_exchange import exchange_synonyms
from tmr import io
from tmr.config import ConfigError, data_config_from_dict
from tmr.sample_complexity import crossing, curves
from tmr.sweep import expand

STUDY = Path(__file__).parent.parent / "studies" / "rhm_sample_complexity"
GEN = {"name": "rhm", "vocab_size": 4, "n_classes": 4, "n_synonyms": 2, "tuple_size": 2,
       "n_levels": 3, "replacement": False}  # P_max = 4 * 2**7 = 512


def _cfg(n_samples: int, **splits: int):
    return data_config_from_dict({"seed": 3, "n_samples": n_samples, "compression": "none",
                                  "generator": GEN, "splits": splits})


# ----------------------------------------------------------------------------- splits

def test_fixed_splits_share_the_test_set_and_nest_the_training_sets(tmp_path):
    files = {}
    for n_train, n_samples in ((40, 140), (90, 190), (90, 400)):
        cfg = _cfg(n_samples, n_train=n_train, n_test=100)
        files[(n_train, n_samples)] = io.write_dataset(tmp_path / f"{n_train}_{n_samples}.h5",
                                                       cfg)
    tests = [io.read(f, "test")[0].x for f in files.values()]
    trains = [io.read(f, "train")[0].x for f in files.values()]
    assert all(len(t) == 100 and np.array_equal(t, tests[0]) for t in tests)
    assert [len(t) for t in trains] == [40, 90, 90]
    assert np.array_equal(trains[1][:40], trains[0])  # nested: a larger P extends a smaller
    assert np.array_equal(trains[1], trains[2])  # n_samples beyond the splits changes nothing
    # without replacement: no input repeats, so train and test are disjoint
    both = np.concatenate([tests[0], trains[1]])
    assert len(np.unique(both, axis=0)) == len(both)


def test_split_sizes_are_validated_with_the_fix():
    with pytest.raises(ConfigError, match=r"splits\.n_train needs splits\.n_test"):
        _cfg(200, n_train=10)
    with pytest.raises(ConfigError, match=r"= 210 exceeds n_samples=200; raise n_samples to "
                                          r"at least 210"):
        _cfg(200, n_train=110, n_test=100)
    with pytest.raises(ConfigError, match=r"n_test=0 must be positive"):
        _cfg(200, n_test=0)


def test_training_set_beyond_the_distinct_inputs_names_the_limit():
    with pytest.raises(ConfigError) as e:
        _cfg(700, n_train=600, n_test=100)
    msg = str(e.value)
    assert "only 512 distinct inputs" in msg and "largest n_train is 412" in msg
    with pytest.raises(ConfigError, match=r"n_samples=513 exceeds the 512 distinct inputs"):
        _cfg(513)
    assert _cfg(512, n_train=412, n_test=100).splits.n_train == 412  # the limit itself is fine
    with_replacement = {**GEN, "replacement": True}
    data_config_from_dict({"n_samples": 700, "generator": with_replacement,
                           "splits": {"n_train": 600, "n_test": 100}})  # no limit then


def _sweep(tmp_path: Path, n_train: list[int]) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(
        f'train = "{STUDY / "train_cnn.toml"}"\ndata = "{STUDY / "data.toml"}"\n'
        '[grid]\n"train.seed" = [0, 1]\n'
        '[[cases]]\n"data.generator.n_synonyms" = [3]\n"data.generator.n_levels" = [3]\n'
        f'"data.n_samples" = [3000]\n"data.splits.n_train" = {n_train}\n'
        '[[cases]]\n"data.generator.n_synonyms" = [4]\n"data.generator.n_levels" = [3]\n'
        '"data.n_samples" = [3000]\n"data.splits.n_train" = [16]\n')
    return path


def test_sweep_cases_are_a_union_of_grids(tmp_path):
    jobs = expand(_sweep(tmp_path, [8, 32]))
    assert len(jobs) == 2 * 2 + 1 * 2
    assert [(j.data["generator"]["n_synonyms"], j.data["splits"]["n_train"], j.train["seed"])
            for j in jobs] == [(3, 8, 0), (3, 8, 1), (3, 32, 0), (3, 32, 1), (4, 16, 0),
                               (4, 16, 1)]
    bad = tmp_path / "bad.toml"
    bad.write_text(_sweep(tmp_path, [8]).read_text().replace('"data.n_samples" = [3000]\n', "",
                                                             1))
    with pytest.raises(ConfigError, match="same keys"):
        expand(bad)


def test_sweep_beyond_the_distinct_inputs_stops_with_one_line(tmp_path):
    # m = 3, L = 3, v = n_c = 4: P_max = 4 * 3**7 = 8748; n_train = 7000 with
    # n_test = 2048 cannot fit; the limit is named before the smaller n_samples
    path = _sweep(tmp_path, [8, 7000])
    with pytest.raises(ConfigError, match=r"only 8748 distinct inputs.*largest n_train is 6700"):
        expand(path)
    tmr = Path(sys.executable).parent / "tmr"
    env = {**os.environ, "COLUMNS": "400"}  # rich wraps at the terminal width
    res = subprocess.run([str(tmr), "sweep", str(path), "--out", str(tmp_path / "o"),
                          "--executor", "local"], capture_output=True, text=True, timeout=120,
                         env=env)
    assert res.returncode != 0
    out = res.stderr + res.stdout
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in out
    assert "8748 distinct inputs" in errors[0] and "largest n_train is 6700" in errors[0]
    assert not (tmp_path / "o" / "runs").exists()  # nothing ran


# ----------------------------------------------------------------------------- P* fit

@pytest.mark.parametrize("p_star", [37.0, 100.0, 123.4, 900.0])
def test_crossing_recovers_a_known_crossing(p_star):
    # linear in log P: log-P interpolation is exact, whatever the grid
    p = np.geomspace(4, 4000, 9)
    err = 0.75 - 0.2 * np.log(p / p_star)  # crosses 0.75 at P = p_star
    c = crossing(p, np.clip(err, 0, 1), 0.75)
    assert c.status == "crossed" and c.p_star == pytest.approx(p_star, rel=1e-9)


def test_crossing_of_a_sigmoidal_curve_is_close():
    # err = e0 / (1 + (P/P0)^2) is exactly e0/2 at P0; between grid points a factor 2
    # apart, log-P interpolation of this smooth curve is off by less than 5 %
    p = 2.0 ** np.arange(2, 13)
    err = 0.875 / (1 + (p / 300.0) ** 2)
    c = crossing(p, err, 0.875 / 2)
    assert c.status == "crossed" and c.p_star == pytest.approx(300.0, rel=0.05)


def test_crossing_outside_the_range_says_which_side():
    p = [10, 20, 40]
    assert crossing(p, [0.9, 0.8, 0.7], 0.4).status == "above_range"
    low = crossing(p, [0.3, 0.2, 0.1], 0.4)
    assert low.status == "below_range" and math.isnan(low.p_star)
    with pytest.raises(ValueError, match="strictly increasing"):
        crossing([10, 10, 20], [0.9, 0.5, 0.1], 0.4)


def test_curves_average_seeds_per_setting():
    rows = [{"m": 2, "n_train": p, "test_error": e}
            for p, e in ((8, 0.8), (8, 0.6), (16, 0.2), (16, 0.4))]
    rows.append({"m": 3, "n_train": 8, "test_error": 0.5})
    cv = curves(rows, ["m"])
    assert list(cv[("2",)].p) == [8, 16] and list(cv[("2",)].count) == [2, 2]
    assert cv[("2",)].mean == pytest.approx([0.7, 0.3])
    assert cv[("2",)].std == pytest.approx([0.1, 0.1])
    assert list(cv[("3",)].mean) == [0.5]


# ----------------------------------------------------------------------------- sensitivity

WORLD = rhm.make_world(vocab_size=6, n_classes=4, n_synonyms=3, tuple_size=2, n_levels=3,
                       rng=0)


def _onehot(a: np.ndarray, v: int) -> np.ndarray:
    return np.eye(v)[a.astype(int)].reshape(len(a), -1)


@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_exchange_changes_every_tuple_of_one_level_into_a_synonym(level, seed):
    smp = rhm.sample(WORLD, 300, rng=seed)
    new = exchange_synonyms(WORLD, smp, level, rng=seed + 10)
    s = WORLD.tuple_size
    for l in range(level):  # the parents of the exchanged tuples and everything above
        assert np.array_equal(new.levels[l], smp.levels[l])
    old_t = smp.levels[level].reshape(len(smp), -1, s)
    new_t = new.levels[level].reshape(len(smp), -1, s)
    assert np.all(np.any(old_t != new_t, axis=2))  # every tuple changed...
    decoded = rhm.decode(WORLD, new.x)  # ...into a valid input with the same parents
    for a, b in zip(decoded.levels, new.levels, strict=True):
        assert np.array_equal(a, b)
    off = (s ** (level - 1) - 1) // (s - 1)
    k = s ** (level - 1)
    keep = np.ones(WORLD.n_nodes, bool)
    keep[off:off + k] = False
    assert np.array_equal(new.aux["rules"][:, keep], smp.aux["rules"][:, keep])
    assert np.all(new.aux["rules"][:, off:off + k] != smp.aux["rules"][:, off:off + k])


def test_exchange_rejects_bad_levels():
    smp = rhm.sample(WORLD, 5, rng=0)
    for bad in (0, 4, True):
        with pytest.raises(ValueError, match="between 1 and n_levels=3"):
            exchange_synonyms(WORLD, smp, bad)


def test_synonymic_sensitivity_is_zero_for_the_parent_level_and_positive_for_the_input():
    smp = rhm.sample(WORLD, 400, rng=5)
    L = WORLD.n_levels
    for level in range(1, L + 1):
        # a layer that computes the level-(l-1) symbols from the input: exactly invariant
        parent = lambda x, lv=level: _onehot(rhm.decode(WORLD, x).levels[lv - 1], 6)  # noqa: E731
        if level > 1:
            assert M.synonymic_sensitivity(parent, smp, level, rng=1) == 0.0
        # the layer of level-l symbols itself changes at every tuple
        same = lambda x, lv=level: _onehot(rhm.decode(WORLD, x).levels[lv], 6)  # noqa: E731
        assert M.synonymic_sensitivity(same, smp, level, rng=1) > 0.3
    inp = lambda x: _onehot(x, 6)  # noqa: E731
    by_site = M.synonymic_sensitivity(lambda x: {"in": inp(x)}, smp, L, rng=2)
    assert set(by_site) == {"in"} and by_site["in"] > 0.3
