"""The stages of the data flow, in order: a module may import its own stage and the stages
below it, never one above. Checked on the source (AST, lazy imports included), so a change that
sends an arrow back up fails here. The order is written down once, in :data:`STAGES`, and
explained in docs/architecture.md."""

from __future__ import annotations

from pathlib import Path

import cmrm

from .import_graph import graph

SRC = Path(cmrm.__file__).resolve().parent

STAGES = (
    "base",
    "data",
    "models",
    "calibration",
    "interventions",
    "generation",
    "judges",
    "organisms",
    "evaluation",
    "report",
    "analysis",
    "tuning",
    "demo",
    "serve",
    "export",
    "cli",
)
"""Lowest first. ``cmrm/__init__.py`` and ``cmrm/__main__.py`` (the package's face) sit above all."""


def stage_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return len(STAGES)
    return STAGES.index(parts[1])


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} ({STAGES[stage_of(module)] if stage_of(module) < len(STAGES) else 'face'})"
        f" -> {target}"
        for module, targets in edges.items()
        for target in targets
        if stage_of(target) > stage_of(module)
    )


def test_every_module_is_in_a_stage_folder() -> None:
    at_root = sorted(p.name for p in SRC.iterdir() if not p.name.startswith((".", "__pycache__")))
    assert set(at_root) - set(STAGES) == {"__init__.py", "__main__.py", "py.typed"}, at_root
    assert set(STAGES) <= set(at_root)


def test_no_module_imports_a_stage_above_its_own() -> None:
    assert upward_imports(graph(SRC)) == []


def test_the_layering_check_finds_an_upward_import() -> None:
    edges = {
        "cmrm.calibration.sequential": {"cmrm.interventions.steering", "cmrm.base.errors"},
        "cmrm.cli.app": {"cmrm.base.errors"},
        "cmrm": {"cmrm.cli.app"},
    }
    assert upward_imports(edges) == [
        "cmrm.calibration.sequential (calibration) -> cmrm.interventions.steering"
    ]


def test_the_readme_shows_the_stage_folders_in_order() -> None:
    """The README's package-structure block names every stage folder, lowest first (it once
    described a flat layout two regroupings old)."""
    readme = (SRC.parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Package structure", 1)[1].split("```", 2)[1]
    listed = [
        line.split()[0].rstrip("/")
        for line in block.splitlines()
        if line.startswith("  ") and line.split()[0].endswith("/")
    ]
    assert listed == list(STAGES), listed
