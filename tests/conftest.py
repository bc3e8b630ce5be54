"""Shared test set-up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tmr import io
from tmr.config import data_config_from_dict

#: the small RHM behind the training tests (v = n = 8, m = 2, s = 2, L = 3)
RHM = {"name": "rhm", "vocab_size": 8, "n_classes": 8, "n_synonyms": 2, "tuple_size": 2,
       "n_levels": 3}


@pytest.fixture(scope="session")
def rhm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 RHM samples (30 % test) in a data file, shared by the training tests."""
    path = tmp_path_factory.mktemp("data") / "rhm.h5"
    cfg = data_config_from_dict({"seed": 0, "n_samples": 600, "generator": RHM,
                                 "splits": {"test_fraction": 0.3}})
    return io.write_dataset(path, cfg)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # tiny models on 2 shared cores: one torch thread avoids OpenMP spin-waiting
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
