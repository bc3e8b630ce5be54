"""The registry of generator families, resolved lazily.

:data:`generators.REGISTRY` maps a family name to its :class:`~generators.base.GeneratorSpec`
(config dataclass and module). Listing, counting and membership tests read only the
names; a family's module is imported the first time its entry is read, so
``sorted(generators.REGISTRY)`` costs nothing and looking up ``"rhm"`` never imports the
percolation, PCFG or IFS code.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

from generators.base import GeneratorSpec

#: family name -> module implementing it (its ``Config``, ``make_world``, ``sample``)
FAMILIES: dict[str, str] = {
    "rhm": "generators.rhm",
    "pcfg": "generators.pcfg",
    "percolation": "generators.percolation",
    "percolation_mf": "generators.percolation_mf",
    "ifs": "generators.ifs",
}


class Registry(MutableMapping[str, GeneratorSpec]):
    """A mapping whose values are imported on first access (names are known upfront)."""

    def __init__(self, modules: dict[str, str]) -> None:
        self._entries: dict[str, GeneratorSpec | str] = dict(modules)

    def __getitem__(self, name: str) -> GeneratorSpec:
        entry = self._entries[name]
        if isinstance(entry, str):
            module = importlib.import_module(entry)
            entry = GeneratorSpec(name, module.Config, module)
            self._entries[name] = entry
        return entry

    def __setitem__(self, name: str, spec: GeneratorSpec) -> None:
        self._entries[name] = spec

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def loaded(self) -> list[str]:
        """Names whose module has been imported so far."""
        return [k for k, v in self._entries.items() if not isinstance(v, str)]

    def __repr__(self) -> str:
        return f"Registry({sorted(self._entries)})"
