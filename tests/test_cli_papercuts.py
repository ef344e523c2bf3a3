"""Papercuts of the command line, each through the real command: the anchor-leak hint names
suites that exist; ..."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import cmrm.cli  # noqa: F401  (registers every command)
from cmrm.cli.app import app
from cmrm.data.registry import BENCHMARKS
from cmrm.evaluation.sources import held_out_hint


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def test_evaluating_on_an_organisms_anchors_suggests_its_held_out_suites(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "organism",
            "--bench",
            "organism:anchor",
            "--anchors",
            "organism:anchor",
            "--method",
            "dataset",
            "-o",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 1, result.output
    (line,) = _error_lines(result.output)
    assert "never evaluate on anchors" in line and "Traceback" not in result.output
    assert "organism:anchor:eval" not in line and "organism:eval" not in line
    suggested = line.split("--bench ", 1)[1].rstrip(".").split(",")
    assert "organism:harmful-image" in suggested
    for name in suggested:  # every suggestion is a real, held-out suite
        assert name in BENCHMARKS and name != "organism:anchor" and ":val-" not in name
    assert not (tmp_path / "run").exists()


def test_held_out_hint_per_kind_of_anchor_set() -> None:
    smol = held_out_hint("organism-smol:anchor")
    assert "organism-smol:harmful-image" in smol and "organism-smol:anchor" not in smol
    assert held_out_hint("vlsafe:anchor") == "Evaluate on vlsafe:eval instead."
    assert "disjoint" in held_out_hint("mine.jsonl")
