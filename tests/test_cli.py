"""The `tmr generate` and `tmr inspect` commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from generators import rhm
from tmr import io
from tmr.cli import app

CONFIG = str(Path(__file__).parent.parent / "configs" / "rhm.toml")
runner = CliRunner()


def test_generate_writes_a_valid_file_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "d" / "rhm.h5"
    res = runner.invoke(app, ["generate", CONFIG, "--out", str(out), "--n-samples", "500",
                              "--seed", "4"])
    assert res.exit_code == 0, res.output
    smp, attrs = io.read(out)
    assert len(smp) == 500 and attrs["seed"] == 4
    dec = rhm.decode(smp.world, smp.x)
    for a, b in zip(dec.levels, smp.levels, strict=True):
        np.testing.assert_array_equal(a, b)
    res = runner.invoke(app, ["generate", CONFIG, "--out", str(out)])
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = runner.invoke(app, ["generate", CONFIG, "--out", str(out), "--overwrite",
                              "--set", "generator.n_levels=2", "--n-samples", "100"])
    assert res.exit_code == 0, res.output
    assert io.read(out)[0].x.shape == (100, 4)


def test_generate_reports_bad_config_in_one_line(tmp_path):
    res = runner.invoke(app, ["generate", CONFIG, "--out", str(tmp_path / "x.h5"),
                              "--set", "generator.n_synonyms=9"])
    assert res.exit_code == 2
    assert "n_synonyms=9 exceeds" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.h5").exists()


def test_inspect_prints_levels_and_rejects_foreign_files(tmp_path):
    out = tmp_path / "rhm.h5"
    assert runner.invoke(app, ["generate", CONFIG, "--out", str(out), "--n-samples", "64"]
                         ).exit_code == 0
    res = runner.invoke(app, ["inspect", str(out)])
    assert res.exit_code == 0
    assert "levels/03_level3" in res.output and "format_version" in res.output
    junk = tmp_path / "junk.h5"
    junk.write_text("hello")
    res = runner.invoke(app, ["inspect", str(junk)])
    assert res.exit_code == 2 and "not a readable HDF5" in res.output
