"""``cmrm tune``: the grid, the objective, a real search on the organism, resume and leaks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from cmrm.base.errors import ConfigError
from cmrm.calibration.shift import ShiftVectors
from cmrm.cli import app
from cmrm.evaluation import EvalConfig, run_eval
from cmrm.interventions.build import InterventionOptions, build_intervention
from cmrm.tuning import Objective, TrialMetrics, TuneConfig, TuneSpace, run_tune
from cmrm.tuning import run as tune_run
from cmrm.tuning.objective import rank_key
from cmrm.tuning.space import auto_bands

VAL = ("organism:harmful-blank", "organism:benign-image", "organism:image-qa")


def metrics(**kw: Any) -> TrialMetrics:
    base: dict[str, Any] = dict(
        compliance=0.5,
        refusal=0.2,
        degenerate=0.1,
        utility=0.9,
        over_refusal=0.0,
        per_benchmark={},
    )
    return TrialMetrics(**{**base, **kw})


def test_objective_constraints_and_ranking() -> None:
    objective = Objective()
    base = metrics()
    good = objective.score(metrics(compliance=0.1, utility=0.88), base)
    broken = objective.score(metrics(compliance=0.0, degenerate=0.6), base)
    useless = objective.score(metrics(compliance=0.0, utility=0.5, over_refusal=0.3), base)
    assert good.feasible and not broken.feasible and not useless.feasible
    assert good.objective == pytest.approx(0.1 + 0.02)
    assert broken.degenerate_gained == pytest.approx(0.5) and broken.violation > 0.4
    assert min([broken, useless, good], key=rank_key) is good
    with pytest.raises(ConfigError, match="w_compliance"):
        Objective(w_compliance=-1)


def test_degenerate_gain_is_the_largest_on_any_one_benchmark() -> None:
    """Breaking the harmful answers only (+30 points there, 0 elsewhere) is infeasible, though
    the mean over three benchmarks gains only 10 points."""
    per = {b: {"degenerate_rate": 0.1} for b in ("harm", "benign", "qa")}
    base = metrics(per_benchmark=per)
    broken = {**per, "harm": {"degenerate_rate": 0.4}}
    score = Objective(max_degenerate_gain=0.15).score(
        metrics(compliance=0.0, degenerate=0.2, per_benchmark=broken), base
    )
    assert score.degenerate_gained == pytest.approx(0.3) and not score.feasible


def test_space_is_breadth_first_and_sequential_only_for_bands() -> None:
    space = TuneSpace(
        operators=("add", "gated"),
        contrasts=("null",),
        alphas=(1.0, 0.5),
        bands=("all", "2"),
        positions=("last",),
    )
    settings = space.settings(num_layers=4)
    groups = {s.group for s in settings}
    assert len(settings) == 2 * len(groups)
    assert all(s.alpha == 0.5 for s in settings[: len(groups)])  # every group's small alpha first
    assert {s.variant.sequential for s in settings if s.band == "2"} == {False}
    assert {s.variant.sequential for s in settings if s.band == "all"} == {False, True}
    assert len({s.key for s in settings}) == len(settings)
    assert auto_bands(30) == ("all", "10:20", "10", "15")
    with pytest.raises(ConfigError, match="operator"):
        TuneSpace(operators=("nope",))


def small(tmp: Path, **kw: Any) -> TuneConfig:
    base: dict[str, Any] = dict(
        model="organism",
        anchors="organism:anchor",
        val=VAL,
        space=TuneSpace(
            operators=("add", "project"),
            contrasts=("null",),
            sequential=(False,),
            alphas=(0.05, 1.0),
            bands=("3",),
            positions=("last",),
        ),
        limit=4,
        anchor_limit=24,
        max_new_tokens=6,
        batch_size=16,
    )
    return TuneConfig(**{**base, **kw})


def test_tune_on_the_organism_writes_everything_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "tune"
    result = run_tune(small(tmp_path), out)
    rows = [json.loads(line) for line in (out / "tune.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [t.setting.key for t in result.trials]
    assert len(rows) == 4  # 2 operators x 2 alphas
    assert result.recommended is min(result.trials, key=lambda t: rank_key(t.score))
    shift = ShiftVectors.load(out)
    assert shift.meta.recommended is not None
    assert shift.meta.recommended["operator"] == result.recommended.setting.operator
    assert shift.meta.recommended["layers"] == "3"
    assert shift.meta.extra["tuned_on"]["val"] == list(VAL)
    summary = json.loads((out / "tune.json").read_text())
    assert summary["recommended"]["key"] == result.recommended.setting.key
    assert "subject to" in summary["objective"]
    with Image.open(out / "pareto.png") as img:
        assert img.format == "PNG"
    # the same command again: every setting is read back, none re-run
    monkeypatch.setattr(tune_run._Search, "trial", lambda *a: pytest.fail("re-ran a setting"))
    again = run_tune(small(tmp_path, batch_size=8), out)  # batch size may change on resume
    assert [t.setting.key for t in again.trials] == [t.setting.key for t in result.trials]
    with pytest.raises(ConfigError, match="different configuration"):
        run_tune(small(tmp_path, limit=3), out)


def test_recommended_setting_is_used_without_alpha_or_operator(tmp_path: Path) -> None:
    out = tmp_path / "tune"
    run_tune(small(tmp_path, budget=2), out)
    shift = ShiftVectors.load(out)
    rec = shift.meta.recommended
    assert rec is not None
    chosen = build_intervention(InterventionOptions(shift=shift))
    assert chosen is not None
    assert (chosen.operator, chosen.alpha, chosen.layers, chosen.positions) == (
        rec["operator"],
        rec["alpha"],
        rec["layers"],
        rec["positions"],
    )
    explicit = build_intervention(InterventionOptions(shift=shift, alpha=0.3))
    assert explicit is not None and explicit.alpha == 0.3 and explicit.operator == "add"
    with pytest.raises(ConfigError, match="tuned on"):
        run_eval(
            EvalConfig(benchmarks=(VAL[0],), methods=("dataset",), shift=str(out), limit=2),
            tmp_path / "leak",
        )


def test_validation_must_not_be_the_anchors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not the anchors"):
        small(tmp_path, val=("organism:anchor",))
    with pytest.raises(ConfigError, match="at least one --val"):
        small(tmp_path, val=())


def test_cli_tune(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = [
        "tune",
        "organism",
        "--anchors",
        "organism:anchor",
        "--anchor-limit",
        "16",
        "--val",
        VAL[0],
        "--val",
        VAL[2],
        "--operators",
        "add",
        "--contrasts",
        "null",
        "--sequential",
        "off",
        "--alphas",
        "0.1",
        "--bands",
        "3",
        "--positions",
        "last",
        "--limit",
        "3",
        "--max-new-tokens",
        "4",
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "recommended: dataset-add-a0.1-L3-last" in result.output
    assert (out / "shift.json").is_file()
    bad = CliRunner().invoke(app, [*args[:-2], "--sequential", "maybe", "-o", str(tmp_path / "b")])
    assert bad.exit_code == 1 and "--sequential must be one of" in bad.output


def test_export_bakes_the_recommendation_when_it_is_a_constant_vector(tmp_path: Path) -> None:
    import torch

    from cmrm.base.errors import CmrmError
    from cmrm.export.setting import baked_setting

    out = tmp_path / "tune"
    run_tune(small(tmp_path, budget=2), out)
    shift = ShiftVectors.load(out)
    assert shift.axes is not None and shift.meta.recommended is not None
    rec = dict(shift.meta.recommended)
    baked = baked_setting(shift, None)
    assert baked.alpha == rec["alpha"] and baked.shift.layers == (3,)
    if rec["operator"] == "project":
        u = shift.axes.axis(3).direction
        expected = torch.dot(shift.vector(3), u) * u
    else:
        expected = shift.vector(3)
    torch.testing.assert_close(baked.shift.vector(3), expected)
    explicit = baked_setting(shift, 0.5)
    assert explicit.alpha == 0.5 and explicit.shift.layers == shift.layers
    gated = replace(shift, meta=replace(shift.meta, recommended={**rec, "operator": "gated"}))
    with pytest.raises(CmrmError, match="cannot|no engine can apply it"):
        baked_setting(gated, None)
