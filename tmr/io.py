"""HDF5 data files: one self-describing file per dataset.

Layout (format ``tmr-hierarchical``, version 1)::

    /x                      (n_samples, ...)   observed data
    /levels/NN_name         (n_samples, ...)   latent level NN, root/coarsest first
    /aux/name               (n_samples, ...)   other per-sample arrays (rule indices, lengths)
    /world/...              the fixed structure (arrays as datasets, scalars as JSON attrs)
    /splits/train, /splits/test                sorted int64 index arrays
    attrs: format, format_version, generator, config (JSON), seed, versions (JSON),
           created, n_samples, level_names (JSON), meta (JSON)

Files are chunked and compressed (gzip by default; ``compression = "lzf"`` or
``"none"`` in the data config write faster), written in chunks (memory does not grow
with ``n_samples``) to a temporary file that is renamed at the end, so an
interrupted run leaves no half file.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import generators
from generators import HierarchicalSample, streams
from tmr.config import DataConfig, data_config_from_dict

FORMAT = "tmr-hierarchical"
FORMAT_VERSION = 1
#: h5py filter settings per ``DataConfig.compression``: gzip is readable by every HDF5
#: tool and smallest; lzf (bundled with h5py) writes several times faster on large
#: image/lattice files for somewhat larger files; "none" is fastest and largest.
COMPRESSION: dict[str, dict[str, Any]] = {
    "gzip": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
    "lzf": {"compression": "lzf", "shuffle": True},
    "none": {},
}
#: target bytes per HDF5 chunk (h5py's guidance: 10 KiB - 1 MiB)
CHUNK_BYTES = 1 << 19


class DataFileError(ValueError):
    """A file that is not a valid TMR data file (foreign, corrupt or a newer format)."""


def versions() -> dict[str, str]:
    """Versions of the package and the libraries that shape the bytes of a file."""
    out = {"python": platform.python_version(), "numpy": np.__version__, "h5py": h5py.__version__}
    try:
        out["tmr-workbench"] = version("tmr-workbench")
    except PackageNotFoundError:  # pragma: no cover
        out["tmr-workbench"] = "0+unknown"
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


# ----------------------------------------------------------------------------- world

def write_world(group: h5py.Group, world: Any) -> None:
    """Store a world dataclass: arrays as datasets, tuples of arrays as sub-groups,
    everything else as JSON attributes."""
    group.attrs["__class__"] = f"{type(world).__module__}.{type(world).__qualname__}"
    for f in dataclasses.fields(world):
        value = getattr(world, f.name)
        if isinstance(value, np.ndarray):
            group.create_dataset(f.name, data=value)
        elif (isinstance(value, tuple | list) and value
              and all(isinstance(v, np.ndarray) for v in value)):
            sub = group.create_group(f.name)
            for i, v in enumerate(value):
                sub.create_dataset(f"{i:03d}", data=v)
        else:
            group.attrs[f.name] = dumps(value)


def read_world(group: h5py.Group, world_cls: type) -> Any:
    """Inverse of :func:`write_world`."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(world_cls):
        if f.name in group:
            obj = group[f.name]
            if isinstance(obj, h5py.Group):
                kwargs[f.name] = tuple(obj[k][()] for k in sorted(obj))
            else:
                kwargs[f.name] = obj[()]
        elif f.name in group.attrs:
            value = json.loads(group.attrs[f.name])
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return world_cls(**kwargs)


# ----------------------------------------------------------------------------- write

@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success,
    remove it on any error (so no half-written file is ever left at ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _chunk_rows(row_shape: tuple[int, ...], itemsize: int, n: int) -> tuple[int, ...]:
    row_bytes = max(int(np.prod(row_shape, dtype=np.int64)) * itemsize, 1)
    rows = int(min(max(CHUNK_BYTES // row_bytes, 1), max(n, 1)))
    return (rows, *row_shape)


def split_indices(n: int, test_fraction: float, rng: Any, *, n_train: int | None = None,
                  n_test: int | None = None) -> dict[str, np.ndarray]:
    """Sorted train/test index arrays: a uniformly random ``round(f*n)`` samples are
    test; or, with ``n_test`` given, rows ``[0, n_test)`` are test and the next
    ``n_train`` rows (default: the rest) train (see :class:`tmr.config.SplitConfig`)."""
    if n_test is not None:
        stop = n if n_train is None else n_test + n_train
        if stop > n:
            raise ValueError(f"n_train + n_test = {stop} exceeds the {n} samples")
        return {"train": np.arange(n_test, stop), "test": np.arange(n_test)}
    perm = generators.as_generator(rng).permutation(n)
    n_test = round(test_fraction * n)
    return {"train": np.sort(perm[n_test:]), "test": np.sort(perm[:n_test])}


def write_dataset(path: str | Path, cfg: DataConfig, *,
                  progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate the dataset described by ``cfg`` and write it to ``path``.

    The run's seed spawns the named streams ``world``, ``data`` and ``split``.
    ``progress(done, total)`` is called after every chunk.
    """
    spec = cfg.spec
    seeds = streams(cfg.seed, "world", "data", "split")
    world = spec.make_world(cfg.generator, seeds["world"])
    n = cfg.n_samples
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        done = 0
        meta: dict[str, Any] = {}
        for chunk in spec.iter_chunks(world, cfg.generator, n, seeds["data"], cfg.chunk_size):
            if done == 0:
                _create(f, chunk, n, COMPRESSION[cfg.compression])
            meta = dict(chunk.meta)  # the last chunk's: running statistics cover the draw
            _put(f, chunk, done)
            done += len(chunk)
            if progress is not None:
                progress(done, n)
        if done != n:
            raise RuntimeError(f"generator {spec.name!r} produced {done} samples, expected {n}")
        write_world(f.create_group("world"), world)
        for name, idx in split_indices(n, cfg.splits.test_fraction, seeds["split"],
                                       n_train=cfg.splits.n_train,
                                       n_test=cfg.splits.n_test).items():
            f.create_dataset(f"splits/{name}", data=idx.astype(np.int64))
        f.attrs.update({
            "format": FORMAT, "format_version": FORMAT_VERSION, "generator": spec.name,
            "config": dumps(cfg.to_dict()), "seed": cfg.seed, "versions": dumps(versions()),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "n_samples": n, "meta": dumps(meta),
        })
    return path


def _arrays(s: HierarchicalSample) -> Iterator[tuple[str, np.ndarray]]:
    yield "x", s.x
    for i, (name, lv) in enumerate(zip(s.level_names, s.levels, strict=True)):
        yield f"levels/{i:02d}_{name}", lv
    for name, arr in s.aux.items():
        yield f"aux/{name}", arr


def _create(f: h5py.File, first: HierarchicalSample, n: int, filters: dict[str, Any]) -> None:
    for key, arr in _arrays(first):
        f.create_dataset(key, shape=(n, *arr.shape[1:]), dtype=arr.dtype,
                         chunks=_chunk_rows(arr.shape[1:], arr.itemsize, n), **filters)
    f.attrs["level_names"] = dumps(list(first.level_names))


def _put(f: h5py.File, chunk: HierarchicalSample, start: int) -> None:
    for key, arr in _arrays(chunk):
        ds = f[key]
        if arr.shape[1:] != ds.shape[1:]:
            raise RuntimeError(f"chunk array {key} has row shape {arr.shape[1:]}, "
                               f"the file has {ds.shape[1:]}")
        ds[start:start + len(arr)] = arr


# ----------------------------------------------------------------------------- read

def open_file(path: str | Path) -> h5py.File:
    """Open and validate a TMR data file (read-only)."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{str(path)!r} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataFileError(f"{str(path)!r} is not a readable HDF5 file ({e}); regenerate it "
                            "with `tmr generate`") from None
    try:
        fmt = f.attrs.get("format")
        if fmt != FORMAT:
            raise DataFileError(f"{str(path)!r} is not a TMR data file (format attribute "
                                f"{fmt!r}, expected {FORMAT!r})")
        ver = int(f.attrs.get("format_version", -1))
        if ver != FORMAT_VERSION:
            raise DataFileError(f"{str(path)!r} has format_version {ver}; this tmr reads "
                                f"version {FORMAT_VERSION}: regenerate the file or upgrade tmr")
        missing = [k for k in ("x", "levels", "world", "splits/train", "splits/test")
                   if k not in f]
        if missing:
            raise DataFileError(f"{str(path)!r} lacks {missing}: the file is incomplete or "
                                "corrupt; regenerate it")
    except Exception:
        f.close()
        raise
    return f


def level_keys(f: h5py.File) -> list[str]:
    """Dataset names under /levels, in level order (root first)."""
    return sorted(f["levels"])


def file_config(f: h5py.File) -> DataConfig:
    """The resolved data config stored in a file."""
    return data_config_from_dict(json.loads(f.attrs["config"]))


def read(path: str | Path, split: str | None = None) -> tuple[HierarchicalSample, dict[str, Any]]:
    """Load a whole file (or one split) into memory.

    Returns the sample (with its world rebuilt) and the root attributes (JSON
    decoded). ``split`` is ``"train"``, ``"test"`` or ``None`` for all samples.
    """
    with open_file(path) as f:
        attrs = {k: _decode_attr(v) for k, v in f.attrs.items()}
        spec = generators.REGISTRY.get(str(attrs["generator"]))
        if spec is None:
            raise DataFileError(f"{str(path)!r} was made by generator {attrs['generator']!r}, "
                                "which this tmr does not know")
        if split is None:
            rows: Any = slice(None)
        elif split in f["splits"]:
            rows = f["splits"][split][()]
        else:
            raise ValueError(f"split={split!r} is not in the file; it has {sorted(f['splits'])}")
        keys = level_keys(f)
        levels = tuple(f["levels"][k][rows] for k in keys)
        aux = {k: f["aux"][k][rows] for k in f.get("aux", {})}
        world = read_world(f["world"], spec.module.World)
        sample = HierarchicalSample(
            x=f["x"][rows], levels=levels, level_names=tuple(k.split("_", 1)[1] for k in keys),
            world=world, meta=attrs.get("meta", {}), aux=aux)
    return sample, attrs


def _decode_attr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    if isinstance(v, np.generic):
        return v.item()
    return v


def describe(path: str | Path) -> dict[str, Any]:
    """Attributes and the shape/dtype of every array (for ``tmr inspect``)."""
    with open_file(path) as f:
        attrs = {k: _decode_attr(v) for k, v in f.attrs.items()}
        arrays: dict[str, tuple[tuple[int, ...], str]] = {}
        f.visititems(lambda name, obj: arrays.__setitem__(name, (obj.shape, str(obj.dtype)))
                     if isinstance(obj, h5py.Dataset) else None)
    return {"attrs": attrs, "arrays": arrays}
