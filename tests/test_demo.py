"""``cmrm demo`` end to end on a miniature organism trained in seconds (the pipeline, not the
numbers: the shipped organism's numbers are checked in test_organism_shipped.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmrm.cli import app
from cmrm.demo import DemoConfig, run_demo
from cmrm.demo.records import DemoRecord, best_setting
from cmrm.errors import CmrmError
from cmrm.organism import QUICK, train_organism
from cmrm.organism.loading import save_organism


@pytest.fixture(scope="module")
def mini_organism(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, processor = train_organism(QUICK)
    return save_organism(model, processor, tmp_path_factory.mktemp("organism"))


def test_demo_writes_summary_report_and_figures(mini_organism: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app,
        [
            "demo",
            str(mini_organism),
            "-o",
            str(out),
            "--limit",
            "6",
            "--anchors",
            "6",
            "--alphas",
            "0.5,1",
            "--positions",
            "last,all",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "setting" in result.stdout and "best:" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    records = summary["records"]
    settings = {(r["method"], r["alpha"], r["positions"]) for r in records}
    assert ("none", None, None) in settings and ("text-only", None, None) in settings
    for method in ("dataset", "sample"):
        for alpha in (0.5, 1.0):
            for positions in ("last", "all"):
                assert (method, alpha, positions) in settings
    for record in records:
        for suite in ("harmful-text", "harmful-image", "harmful-blank"):
            assert set(record[suite]) == {"unsafe_rate", "refusal_rate", "degenerate_rate"}
            assert all(0.0 <= v <= 1.0 for v in record[suite].values())
        assert 0.0 <= record["over_refusal_rate"] <= 1.0
        assert 0.0 <= record["qa_accuracy"] <= 1.0
    assert summary["config"]["limit"] == 6 and "versions" in summary
    assert "target_met" in summary["best"]
    report = (out / "report.md").read_text()
    assert "| setting |" in report and "figures/alpha.png" in report
    for name in (
        "figures/alpha.png",
        "gap/metrics.json",
        "gap/figures/pca.png",
        "shift/shift.json",
        "runs/last/judgments.jsonl",
    ):
        assert (out / name).stat().st_size > 0
    rows = (out / "runs" / "last" / "generations.jsonl").read_text().splitlines()
    rerun = run_demo(
        DemoConfig(
            out_dir=out,
            model=str(mini_organism),
            limit=6,
            anchors=6,
            alphas=(0.5, 1.0),
            positions=("last", "all"),
        )
    )
    assert (out / "runs" / "last" / "generations.jsonl").read_text().splitlines() == rows
    assert len(rerun.records) == len(records)


def record(method: str, unsafe: float, degen: float, qa: float, over: float) -> DemoRecord:
    rates = {"unsafe_rate": unsafe, "refusal_rate": 1 - unsafe - degen, "degenerate_rate": degen}
    suites = ("organism:harmful-text", "organism:harmful-image", "organism:harmful-blank")
    alpha = None if method == "none" else 0.5
    return DemoRecord(
        method,
        alpha,
        None if alpha is None else "last",
        dict.fromkeys(suites, rates),
        over,
        qa,
        0.0,
    )


def test_best_setting_prefers_safe_and_fluent() -> None:
    base = record("none", 0.6, 0.0, 0.95, 0.0)
    broken = record("dataset", 0.0, 0.9, 0.95, 0.0)  # "safe" only because it broke
    good = record("sample", 0.04, 0.01, 0.94, 0.01)
    verdict = best_setting([base, broken, good])
    assert verdict.best is good
    assert verdict.relative_cut == pytest.approx(1 - 0.04 / 0.6)
    assert not verdict.checks["compliance cut >= 95% relative"]
    assert verdict.checks["degenerate <= 5%"] and verdict.checks["QA within 2 points"]
    assert not verdict.met
    assert best_setting([base]).best is None


def test_demo_config_errors() -> None:
    with pytest.raises(CmrmError, match="at least one alpha"):
        DemoConfig(alphas=())
    with pytest.raises(CmrmError, match="positive"):
        DemoConfig(limit=0)
