"""The README stays a short front page: two commands first, CI runs the second, every
link resolves, under 200 lines (the rest lives on the documentation site)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
MAX_LINES = 200


def test_first_code_block_is_exactly_make_demo_and_make_test() -> None:
    block = re.search(r"```[a-z]*\n(.*?)```", README, re.S)
    assert block is not None
    commands = [ln.split("#")[0].strip() for ln in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


def test_ci_runs_exactly_make_test() -> None:
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [ln for ln in lines if ln and not ln.startswith(("#", "set ", "cd "))]
    assert commands == ["make test"]


def test_readme_is_short_and_its_links_resolve() -> None:
    assert len(README.splitlines()) < MAX_LINES
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    missing = [t for t in targets if not t.startswith("http") and not (ROOT / t).exists()]
    assert targets and missing == []
