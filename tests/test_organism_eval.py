"""``cmrm organism eval`` runs through ``cmrm eval``'s runner and report writer."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cmrm.cli import app
from cmrm.organisms.toy import EVAL_SUITES


def test_organism_eval_is_an_eval_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["organism", "eval", "--limit", "4", "-o", str(run)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[:2] == [
        "| suite | n | refusal % | harmful compliance % | degenerate % | correct % |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    assert [line.split(" | ")[0].lstrip("| ") for line in lines[2:]] == list(EVAL_SUITES)
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["benchmarks"] == list(EVAL_SUITES) and config["methods"] == ["none"]
    assert config["judge"] == "organism" and config["limit"] == 4
    assert (run / "report.md").is_file() and (run / "report.html").is_file()

    other = tmp_path / "eval"
    bench = "organism:harmful-image"
    args = ["eval", "organism", "--bench", bench, "--method", "none", "--judge", "organism"]
    args += ["--limit", "4", "--max-new-tokens", "20", "--batch-size", "64", "-o", str(other)]
    assert CliRunner().invoke(app, args).exit_code == 0
    ours = [r for r in _rows(run / "generations.jsonl") if r["benchmark"] == bench]
    assert [r["completion"] for r in ours] == [
        r["completion"] for r in _rows(other / "generations.jsonl")
    ]


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]
