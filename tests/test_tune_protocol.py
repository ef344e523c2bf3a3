"""The powered tune protocol: paired differences to ``none`` with intervals, constraints judged
on the interval's bound, and ``cmrm eval --shift TUNE_DIR`` applying the recommendation."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cmrm.calibration.shift import ShiftVectors
from cmrm.cli import app
from cmrm.evaluation.metrics import bootstrap
from cmrm.evaluation.options import build_config
from cmrm.evaluation.paired import item_values, paired_difference
from cmrm.tuning import Objective, TrialMetrics


def rows(values: dict[str, bool], kind: str = "benign") -> list[dict[str, Any]]:
    return [
        {"id": i, "item": {"kind": kind}, "judgment": {"refused": v, "degenerate": False}}
        for i, v in values.items()
    ]


def test_paired_difference_is_the_rate_difference_with_a_narrower_interval() -> None:
    ids = [str(i) for i in range(64)]
    base = {i: k < 16 for k, i in enumerate(ids)}  # 16/64 refused
    trial = {**base, ids[40]: True, ids[41]: True}  # two more refuse, the rest the same
    a = item_values(rows(trial), "over_refusal_rate")
    b = item_values(rows(base), "over_refusal_rate")
    diff = paired_difference(a, b)
    assert diff.value == pytest.approx(2 / 64) and diff.n == 64
    assert diff.low is not None and diff.high is not None and 0.0 <= diff.low <= diff.high
    # far narrower than the two rates' own intervals, which overlap almost entirely
    ra, rb = bootstrap(list(a.values())), bootstrap(list(b.values()))
    assert ra.high is not None and ra.low is not None
    assert diff.high - diff.low < (ra.high - ra.low) / 2
    assert rb.value == pytest.approx(0.25)
    same = paired_difference(b, b)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    assert paired_difference(a, {}).value is None
    # harmful rows do not count toward over-refusal
    assert item_values(rows(trial, kind="harmful"), "over_refusal_rate") == {}


def metrics(paired: dict[str, Any], **kw: Any) -> TrialMetrics:
    base: dict[str, Any] = dict(
        compliance=0.2, refusal=0.8, degenerate=0.0, utility=0.9, over_refusal=0.1,
        per_benchmark={}, paired=paired,
    )  # fmt: skip
    return TrialMetrics(**{**base, **kw})


def test_constraints_are_judged_on_the_upper_bound_of_the_paired_interval() -> None:
    base = metrics({}, over_refusal=0.1)
    # point gain 2 points (within 5), but the interval reaches 7 points: not shown to be small
    noisy = metrics(
        {"benign": {"over_refusal_rate": {"value": 0.02, "low": -0.03, "high": 0.07, "n": 64}}},
        over_refusal=0.12,
    )
    tight = metrics(
        {"benign": {"over_refusal_rate": {"value": 0.02, "low": 0.0, "high": 0.04, "n": 150}}},
        over_refusal=0.12,
    )
    qa_loss = metrics(
        {"qa": {"accuracy": {"value": -0.01, "low": -0.06, "high": 0.03, "n": 64}}},
        over_refusal=0.1,
    )
    # only the harm constraints here (these metrics carry no refusal gain either way)
    bound = Objective(min_refusal_gain=-1)
    point = Objective(criterion="point", min_refusal_gain=-1)
    assert not bound.score(noisy, base).feasible and point.score(noisy, base).feasible
    assert bound.score(noisy, base).over_refusal_gained == pytest.approx(0.07)
    assert bound.score(tight, base).feasible
    lost = bound.score(qa_loss, base)
    assert not lost.feasible and lost.utility_lost == pytest.approx(0.06)
    # the objective ranks on the point estimates either way
    assert bound.score(noisy, base).objective == pytest.approx(point.score(noisy, base).objective)
    assert "upper bound of the paired 95 % interval" in bound.describe()
    with pytest.raises(Exception, match="criterion must be one of"):
        Objective(criterion="median")


def tuned_shift(tmp_path: Path, feasible: bool) -> Path:
    from cmrm.calibration.estimate import calibrate
    from cmrm.data import load_items
    from cmrm.models import load_vlm

    vlm = load_vlm("organism")
    shift = calibrate(vlm, load_items("organism:anchor", limit=8))
    rec = {
        "source": "dataset", "operator": "project", "alpha": 0.5, "layers": "2",
        "positions": "last", "feasible": feasible,
    }  # fmt: skip
    out = tmp_path / ("ok" if feasible else "bad")
    replace(shift, meta=replace(shift.meta, recommended=rec)).save(out)
    return out


def test_eval_applies_the_recommendation_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shift = tuned_shift(tmp_path, feasible=True)
    config = build_config("organism", benches=["organism:image-qa"], methods="dataset",
                          shift=str(shift))  # fmt: skip
    assert (config.operators, config.alphas, config.layers, config.positions) == (
        ("project",), (0.5,), "2", "last",
    )  # fmt: skip
    assert config.applied is not None and "project, alpha 0.5, layers 2" in config.applied
    explicit = build_config("organism", benches=["organism:image-qa"], methods="dataset",
                            shift=str(shift), alphas="1")  # fmt: skip
    assert explicit.alphas == (1.0,) and explicit.operators == ("add",)
    assert explicit.applied is None
    bad = tuned_shift(tmp_path, feasible=False)
    with caplog.at_level(logging.WARNING):
        flagged = build_config("organism", benches=["organism:image-qa"], methods="dataset",
                               shift=str(bad))  # fmt: skip
    assert flagged.applied is not None and "met none of its constraints" in flagged.applied
    assert "met NONE of its tune constraints" in caplog.text
    assert ShiftVectors.load(bad).meta.recommended is not None


def test_cli_eval_with_a_tuned_shift_evaluates_the_recommendation(tmp_path: Path) -> None:
    shift = tuned_shift(tmp_path, feasible=True)
    out = tmp_path / "run"
    args = ["eval", "organism", "--bench", "organism:image-qa", "--method", "dataset",
            "--shift", str(shift), "--limit", "2", "--max-new-tokens", "3", "-o", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "applying tune's recommendation" in result.output
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["operators"] == ["project"] and config["alphas"] == [0.5]
    assert config["layers"] == "2" and "project, alpha 0.5" in config["applied"]
    cells = json.loads((out / "summary.json").read_text())["cells"]
    assert [c["operator"] for c in cells] == ["project"]
