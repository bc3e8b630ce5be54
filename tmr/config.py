"""Configs: frozen dataclasses loaded from TOML, unknown keys rejected, dotted overrides.

A data config (``tmr generate``) looks like::

    seed = 0
    n_samples = 4096
    [generator]
    name = "rhm"          # a key of generators.REGISTRY
    vocab_size = 8        # the generator's Config fields
    [splits]
    test_fraction = 0.2

Any dataclass can be built from a dict with :func:`from_dict`, which names the
offending key (with its dotted path) and the allowed keys on error.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import generators

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that cannot be used (the message says why and how to fix)."""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}={value!r}: {errors}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return from_dict(tp, value, where)  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ConfigError(f"{where}={value!r} must be a list")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}={value!r} must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}={value!r} must be an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}={value!r} must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}={value!r} must be a string")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise
    :class:`ConfigError` naming the dotted key."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown config key {key!r}; allowed keys here: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(value, hints[name], key)
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"missing config key {(where + '.' if where else '') + missing[0]!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


#: field metadata key: leave the field out of :func:`to_dict` while it has its default, so a
#: new optional field does not change the record (or the sweep hash) of existing configs
OMIT_DEFAULT = "omit_default"


def to_dict(obj: Any) -> Any:
    """JSON-able dict of a (nested) config dataclass (fields marked ``OMIT_DEFAULT`` in
    their metadata are left out while they equal their default)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get(OMIT_DEFAULT) and getattr(obj, f.name) == f.default)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=v"`` -> (["a", "b"], v) with ``v`` read as a TOML value (bare words are strings)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    path = [p.strip() for p in key.strip().split(".")]
    if not all(path):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply dotted ``--set`` overrides to a raw config dict (a deep copy is returned)."""
    out = json.loads(json.dumps(data))
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a table")
        node[path[-1]] = value
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Train/test split: a uniformly random ``test_fraction`` of the samples, or,
    when ``n_test`` is set, fixed sizes: the first ``n_test`` samples of the draw
    are the test set and the next ``n_train`` (default: all the rest) the training
    set. Draws are i.i.d. (or successive sampling without replacement), so the
    first rows are a random subset. Where a larger draw of the same seed begins with
    a smaller one (the RHM's draws, with or without replacement), data files that
    differ only in ``n_train`` or ``n_samples`` share one test set and have nested
    training sets (a sample-complexity curve)."""

    test_fraction: float = 0.2
    n_train: int | None = None
    n_test: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction={self.test_fraction} must be in [0, 1)")
        if self.n_test is not None and self.n_test < 1:
            raise ValueError(f"splits.n_test={self.n_test} must be positive")
        if self.n_train is not None:
            if self.n_train < 1:
                raise ValueError(f"splits.n_train={self.n_train} must be positive")
            if self.n_test is None:
                raise ValueError("splits.n_train needs splits.n_test (the fixed test size)")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What ``tmr generate`` makes: a generator, its parameters, a size and a seed."""

    generator_name: str
    generator: Any
    n_samples: int = 4096
    seed: int = 0
    chunk_size: int = 65536
    compression: str = "gzip"
    splits: SplitConfig = dataclasses.field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        if self.compression not in ("gzip", "lzf", "none"):
            raise ValueError(f"compression={self.compression!r} must be 'gzip', 'lzf' or "
                             "'none'")
        if self.n_samples < 1:
            raise ValueError(f"n_samples={self.n_samples} must be positive")
        if self.seed < 0:
            raise ValueError(f"seed={self.seed} must be non-negative")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size={self.chunk_size} must be positive")
        self._check_sizes()

    def _check_sizes(self) -> None:
        """Fixed split sizes must fit in ``n_samples``, and a generator that samples
        without replacement must have that many distinct inputs (its
        ``distinct_limit(config)``, e.g. the RHM's ``P_max``)."""
        sp = self.splits
        spec = generators.REGISTRY.get(self.generator_name)
        limit_fn = getattr(spec.module, "distinct_limit", None) if spec else None
        limit = limit_fn(self.generator) if limit_fn is not None else None
        if sp.n_test is not None:
            need = sp.n_test + (sp.n_train or 0)
            if limit is not None and need > limit:
                largest = limit - sp.n_test
                fix = (f"the largest n_train is {largest} at this n_test" if largest > 0
                       else "n_test alone is too large")
                raise ValueError(
                    f"splits.n_train={sp.n_train} + splits.n_test={sp.n_test} = {need} "
                    f"distinct samples, but this {self.generator_name} world has only "
                    f"{limit} distinct inputs (sampling without replacement): {fix}; lower "
                    "them or enlarge the world")
            if need > self.n_samples:
                raise ValueError(f"splits.n_train + splits.n_test = {need} exceeds "
                                 f"n_samples={self.n_samples}; raise n_samples to at least "
                                 f"{need}")
        if limit is not None and self.n_samples > limit:
            raise ValueError(f"n_samples={self.n_samples} exceeds the {limit} distinct inputs "
                             f"of this {self.generator_name} world (sampling without "
                             "replacement); lower n_samples, sample with replacement or "
                             "enlarge the world")

    @property
    def spec(self) -> generators.GeneratorSpec:
        return generators.REGISTRY[self.generator_name]

    def to_dict(self) -> dict[str, Any]:
        out = to_dict(self)
        out["generator"] = {"name": out.pop("generator_name"), **out["generator"]}
        return out


def data_config_from_dict(data: Mapping[str, Any]) -> DataConfig:
    data = dict(data)
    gen = dict(data.pop("generator", None) or {})
    name = gen.pop("name", None)
    if name is None:
        raise ConfigError("the config needs a [generator] table with name = one of "
                          f"{sorted(generators.REGISTRY)}")
    if name not in generators.REGISTRY:
        raise ConfigError(f"generator.name={name!r} is unknown; choose one of "
                          f"{sorted(generators.REGISTRY)}")
    gen_cfg: Any = from_dict(generators.REGISTRY[name].config, gen, "generator")
    if "generator_name" in data:
        raise ConfigError("unknown config key 'generator_name'; use [generator] name = ...")
    return from_dict(DataConfig, {**data, "generator_name": name, "generator": gen_cfg})


def load_data_config(path: str | Path, overrides: Sequence[str] = ()) -> DataConfig:
    """Read a data config from TOML and apply ``--set`` overrides."""
    return data_config_from_dict(apply_overrides(read_toml(path), overrides))
