"""Code, docstrings, configs and documentation speak of the project only: no internal
ticket numbers (the word for a tracker entry followed by its number) anywhere in the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("generators", "tmr", "configs", "docs", "benchmarks", "tests", ".ci")
TOP_FILES = ("README.md", "Makefile", "pyproject.toml", "mkdocs.yml")
SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".pcfg", ".json", ".txt", ".cfg", ""}
# built from pieces so that this file does not match itself
WORD = "iss" + "ue"
PATTERN = re.compile(rf"\b({WORD}|tick" + r"et)s?\s*#?\s*\d", re.IGNORECASE)


def _files() -> list[Path]:
    out = [ROOT / f for f in TOP_FILES if (ROOT / f).is_file()]
    for d in SCANNED:
        out += [p for p in (ROOT / d).rglob("*") if p.is_file() and p.suffix in SUFFIXES
                and "__pycache__" not in p.parts]
    return out


def test_no_ticket_numbers_in_code_configs_or_docs() -> None:
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
            for p in _files()
            for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
            if PATTERN.search(line)]
    assert hits == [], "ticket numbers (say what the code does instead):\n" + "\n".join(hits)


def test_the_pattern_catches_the_forms_it_forbids() -> None:
    for text in (f"({WORD} 7)", f"{WORD}s 6, 7", f"{WORD} #12", "see Tick" + "et 3"):
        assert PATTERN.search(text), text
    for text in ("tissue 7", f"a known {WORD} with numba", "issued 3 times"):
        assert not PATTERN.search(text), text
