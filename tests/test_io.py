"""HDF5 data files: round trips, atomic writes, validation, lazy dataset."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from generators import rhm, streams
from tmr import io
from tmr.config import data_config_from_dict
from tmr.data import H5Dataset

CFG = {"seed": 3, "n_samples": 3000, "chunk_size": 700,
       "generator": {"name": "rhm", "vocab_size": 8, "n_classes": 8, "n_synonyms": 2,
                     "tuple_size": 2, "n_levels": 3},
       "splits": {"test_fraction": 0.25}}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "rhm.h5"
    io.write_dataset(path, data_config_from_dict(CFG))
    return path


def test_round_trip_equals_direct_generation(data_file):
    cfg = data_config_from_dict(CFG)
    seeds = streams(cfg.seed, "world", "data")
    world = rhm.make_world(**{k: v for k, v in CFG["generator"].items() if k != "name"},
                           rng=seeds["world"])
    direct = rhm.sample(world, 3000, rng=seeds["data"])
    smp, attrs = io.read(data_file)
    np.testing.assert_array_equal(smp.x, direct.x)
    for a, b in zip(smp.levels, direct.levels, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(smp.aux["rules"], direct.aux["rules"])
    for a, b in zip(smp.world.rules, world.rules, strict=True):
        np.testing.assert_array_equal(a, b)
    assert smp.level_names == ("root", "level1", "level2", "level3")
    assert attrs["format"] == io.FORMAT and attrs["seed"] == 3
    assert attrs["config"]["generator"]["name"] == "rhm"
    assert io.file_config(h5py.File(data_file)) == cfg


def test_every_level_decodes_from_the_stored_leaves(data_file):
    smp, _ = io.read(data_file)
    dec = rhm.decode(smp.world, smp.x)
    for a, b in zip(dec.levels, smp.levels, strict=True):
        np.testing.assert_array_equal(a, b)


def test_splits_partition_the_samples_and_are_sorted(data_file):
    with h5py.File(data_file) as f:
        train, test = f["splits/train"][()], f["splits/test"][()]
        assert f["x"].chunks is not None and f["x"].compression == "gzip"
    assert len(test) == 750 and len(train) == 2250
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(3000))
    tr, _ = io.read(data_file, "train")
    np.testing.assert_array_equal(tr.x, io.read(data_file)[0].x[train])


def test_chunk_size_of_writer_does_not_change_the_data(tmp_path, data_file):
    other = tmp_path / "other.h5"
    io.write_dataset(other, data_config_from_dict({**CFG, "chunk_size": 4096}))
    np.testing.assert_array_equal(io.read(other)[0].x, io.read(data_file)[0].x)


@pytest.mark.parametrize("compression", ["lzf", "none"])
def test_compression_choice_changes_the_filter_not_the_data(tmp_path, data_file, compression):
    other = tmp_path / f"{compression}.h5"
    io.write_dataset(other, data_config_from_dict({**CFG, "compression": compression}))
    a, b = io.read(other)[0], io.read(data_file)[0]
    np.testing.assert_array_equal(a.x, b.x)
    for la, lb in zip(a.levels, b.levels, strict=True):
        np.testing.assert_array_equal(la, lb)
    with h5py.File(other) as f, h5py.File(data_file) as g:
        assert f["x"].compression == (None if compression == "none" else compression)
        assert g["x"].compression == "gzip"


def test_unknown_compression_is_refused():
    with pytest.raises(ValueError, match="compression='zstd'"):
        data_config_from_dict({**CFG, "compression": "zstd"})


def test_interrupted_write_leaves_no_file(tmp_path):
    path = tmp_path / "broken.h5"

    def explode(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.write_dataset(path, data_config_from_dict(CFG), progress=explode)
    assert list(tmp_path.iterdir()) == []


def test_foreign_and_corrupt_files_fail_clearly(tmp_path, data_file):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(io.DataFileError, match="not a TMR data file"):
        io.read(foreign)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(io.DataFileError, match="not a readable HDF5"):
        io.read(junk)
    with pytest.raises(io.DataFileError, match="does not exist"):
        io.read(tmp_path / "missing.h5")
    newer = tmp_path / "newer.h5"
    newer.write_bytes(data_file.read_bytes())
    with h5py.File(newer, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(io.DataFileError, match="format_version 99"):
        io.read(newer)
    with pytest.raises(ValueError, match="split='valid'"):
        io.read(data_file, "valid")


def test_dataset_reads_lazily_with_two_workers(data_file):
    ds = H5Dataset(data_file, "test")
    assert ds._file is None  # nothing opened until a worker reads
    smp, _ = io.read(data_file, "test")
    loader = DataLoader(ds, batch_size=64, num_workers=2, shuffle=False)
    xs, roots = [], []
    for x, levels in loader:
        xs.append(x)
        roots.append(levels[0])
    assert torch.equal(torch.cat(xs), torch.from_numpy(smp.x.astype(np.int64)))
    assert torch.equal(torch.cat(roots), torch.from_numpy(smp.levels[0].astype(np.int64)))
    x0, lv0 = ds[5]
    assert torch.equal(x0, torch.from_numpy(smp.x[5].astype(np.int64)))
    assert len(lv0) == 4
