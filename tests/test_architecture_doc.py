"""docs/architecture.md stays true: its stage table is test_layering's STAGES in order, every
class or value name it puts in backticks exists in the source, and every path it names exists."""

from __future__ import annotations

import re
from pathlib import Path

import cmrm

from .test_layering import STAGES

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
FILES = [*Path(cmrm.__file__).parent.rglob("*.py"), *(ROOT / "tests").glob("*.py")]
SOURCE = "\n".join(p.read_text(encoding="utf-8") for p in FILES)


def test_the_stage_table_is_the_layering_order() -> None:
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", DOC, flags=re.MULTILINE)
    assert [name for _, name in rows] == list(STAGES)
    assert [int(n) for n, _ in rows] == list(range(len(STAGES)))


def test_every_named_class_and_registry_exists() -> None:
    names = set(re.findall(r"`([A-Z][A-Za-z0-9_]+)`", DOC))
    assert {"VLM", "Item", "ShiftVectors", "Intervention", "Judgment", "OPERATORS"} <= names
    missing = [
        n
        for n in sorted(names)
        if not re.search(rf"^\s*(class {n}\b|{n}\b\s*[:=])", SOURCE, re.MULTILINE)
    ]
    assert missing == ["Generation"], missing  # named only to say there is no such class
    assert "no `Generation` class" in DOC


def test_every_named_path_exists() -> None:
    paths = set(re.findall(r"`((?:src|tests|docs|scripts)/[\w./-]+)`", DOC))
    assert "src/cmrm/generation/names.py" in paths
    assert [p for p in sorted(paths) if not (ROOT / p).exists()] == []
