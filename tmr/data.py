"""A torch Dataset over a TMR data file, opened lazily in each worker process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from tmr import io


class H5Dataset(Dataset):
    """Rows of one split of a data file: ``(x, levels)`` with ``levels`` a tuple of
    arrays, root first.

    The HDF5 handle is opened on first access in each process (and reopened after
    a fork), so the dataset can be pickled to ``DataLoader`` workers. ``__getitems__``
    reads a whole batch with one sorted fancy-index read per array.
    """

    def __init__(self, path: str | Path, split: str | None = "train") -> None:
        self.path = Path(path)
        with io.open_file(self.path) as f:
            self.level_keys = io.level_keys(f)
            self.level_names = tuple(k.split("_", 1)[1] for k in self.level_keys)
            if split is None:
                self.rows = np.arange(f["x"].shape[0])
            elif split in f["splits"]:
                self.rows = f["splits"][split][()]
            else:
                raise ValueError(f"split={split!r} is not in {self.path}; it has "
                                 f"{sorted(f['splits'])}")
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"], state["_pid"] = None, None
        return state

    def __getitem__(self, i: int) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        x, levels = self._read(np.asarray([self.rows[i]]))
        return x[0], tuple(lv[0] for lv in levels)

    def __getitems__(self, idx: list[int]) -> list[tuple[torch.Tensor, tuple[torch.Tensor, ...]]]:
        rows = self.rows[np.asarray(idx)]
        order = np.argsort(rows, kind="stable")
        x, levels = self._read(rows[order])
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        return [(x[j], tuple(lv[j] for lv in levels)) for j in inv]

    def _read(self, rows: np.ndarray) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f = self._handle()
        # h5py fancy reads need strictly increasing indices
        uniq, inverse = np.unique(rows, return_inverse=True)
        x = _tensor(f["x"][uniq][inverse])
        levels = [_tensor(f["levels"][k][uniq][inverse]) for k in self.level_keys]
        return x, levels


def _tensor(a: np.ndarray) -> torch.Tensor:
    """Integers become int64 (token ids, labels), floats float32."""
    return torch.from_numpy(a.astype(np.int64 if a.dtype.kind in "iub" else np.float32))
