"""Configs: TOML loading, unknown keys, types and dotted overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tmr.config import ConfigError, apply_overrides, data_config_from_dict, load_data_config

CONFIGS = Path(__file__).parent.parent / "configs"


def test_shipped_rhm_configs_load():
    for name in ("rhm.toml", "rhm_large.toml"):
        cfg = load_data_config(CONFIGS / name)
        assert cfg.generator_name == "rhm" and cfg.n_samples > 0


def test_overrides_apply_with_toml_types():
    cfg = load_data_config(CONFIGS / "rhm.toml",
                           ["seed=7", "generator.n_levels=2", "splits.test_fraction=0.5",
                            "generator.rule_exponent=1", "generator.root_prior=[0.5, 0.5, 0, 0, "
                            "0, 0, 0, 0]"])
    assert cfg.seed == 7 and cfg.generator.n_levels == 2 and cfg.splits.test_fraction == 0.5
    assert cfg.generator.rule_exponent == 1.0 and cfg.generator.root_prior[0] == 0.5
    assert apply_overrides({"a": {"b": 1}}, ["a.c=hello"]) == {"a": {"b": 1, "c": "hello"}}


@pytest.mark.parametrize(("data", "match"), [
    ({"generator": {"name": "rhm", "vocab": 3}}, "unknown config key 'generator.vocab'"),
    ({"generator": {"name": "rhm"}, "n_sample": 3}, "unknown config key 'n_sample'"),
    ({"generator": {"name": "nope"}}, "generator.name='nope' is unknown"),
    ({"n_samples": 3}, r"\[generator\] table"),
    ({"generator": {"name": "rhm", "n_levels": "3"}}, "generator.n_levels='3' must be an integer"),
    ({"generator": {"name": "rhm"}, "n_samples": 0}, "n_samples=0 must be positive"),
    ({"generator": {"name": "rhm"}, "splits": {"test_fraction": 1.5}}, "test_fraction=1.5"),
])
def test_bad_configs_name_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        data_config_from_dict(data)


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        load_data_config(CONFIGS / "rhm.toml", ["seed"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_data_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_data_config(bad)
