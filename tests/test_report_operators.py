"""A run of two operators reports them apart: the tables carry an operator column, the alpha
figures draw one line per (method, operator) and the trade-off labels its points by both — from a
real `cmrm eval --operator add,project` on the organism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmrm.cli import app
from cmrm.evaluation.metrics import Summary
from cmrm.report.canvas import new_figure
from cmrm.report.figures import _panel

runner = CliRunner()


@pytest.fixture(scope="module")
def two_operators(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    args = ["eval", "organism", "--bench", "organism:harmful-image", "--method", "none,dataset",
            "--operator", "add,project", "--alpha", "0.1,1", "--anchors", "organism:anchor",
            "--limit", "3", "--max-new-tokens", "3", "-o", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    return out


def test_the_tables_tell_the_operators_apart(two_operators: Path) -> None:
    md = (two_operators / "report.md").read_text()
    page = (two_operators / "report.html").read_text()
    assert "| method | operator | alpha | judge | n |" in md
    for operator in ("add", "project"):
        assert f"| dataset | {operator} | 0.1 | organism | 3/3 |" in md
        assert f"<td>dataset</td><td>{operator}</td><td>0.1</td>" in page
    assert "| none | - | - | organism | 3/3 |" in md
    assert "- **operators**: add, project" in md


def test_the_alpha_figure_draws_one_line_per_operator(two_operators: Path) -> None:
    summary = Summary.from_json(json.loads((two_operators / "summary.json").read_text()))
    cells = [c for c in summary.cells if c.metrics["unsafe_rate"].value is not None]
    ax = new_figure().subplots()
    _panel(ax, cells, "unsafe_rate", [0.1, 1.0])
    lines = {c.get_label(): c for c in ax.containers}
    assert set(lines) == {"dataset/add", "dataset/project"}
    for container in lines.values():
        xs = list(container.lines[0].get_xdata())
        assert xs == [0.1, 1.0]  # two alphas each, not four points of one zig-zag
    assert [line.get_label() for line in ax.get_lines() if line.get_label() == "none"]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("summary.json", "[]", "is not a cmrm eval summary"),
        ("summary.json", '{"cells": [{"benchmark": "b"}]}', "missing field 'method'"),
        ("config.json", "[1]", "is not a cmrm eval run configuration"),
    ],
)
def test_a_broken_run_folder_is_one_error(
    tmp_path: Path, two_operators: Path, name: str, content: str, fragment: str
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for file in ("config.json", "summary.json", "generations.jsonl", "judgments.jsonl"):
        (run_dir / file).write_bytes((two_operators / file).read_bytes())
    (run_dir / name).write_text(content)
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(run_dir / name) in errors[0] and fragment in errors[0]
    assert not (run_dir / "report.md").exists()
