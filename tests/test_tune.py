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
    good = objective.score(metrics(compliance=0.1, refusal=0.6, utility=0.88), base)
    broken = objective.score(metrics(compliance=0.0, degenerate=0.6), base)
    useless = objective.score(metrics(compliance=0.0, utility=0.5, over_refusal=0.3), base)
    assert good.feasible and not broken.feasible and not useless.feasible
    assert good.objective == pytest.approx(0.1 + 0.02)
    assert broken.degenerate_gained == pytest.approx(0.5) and broken.violation > 0.4
    assert min([broken, useless, good], key=rank_key) is good
    with pytest.raises(ConfigError, match="w_compliance"):
        Objective(w_compliance=-1)


def test_a_harmless_setting_must_also_show_more_refusals() -> None:
    """No harm is not enough: a setting whose paired refusal gain's interval reaches zero (or
    below) on any harmful benchmark does not help, so it is not feasible; a negative
    ``min_refusal_gain`` drops the requirement."""

    def paired(low_a: float, low_b: float) -> dict[str, Any]:
        zero = {"value": 0.0, "low": 0.0, "high": 0.0, "n": 64}
        return {
            "harm-a": {"refusal_rate": {"value": 0.1, "low": low_a, "high": 0.2, "n": 64}},
            "harm-b": {"refusal_rate": {"value": 0.1, "low": low_b, "high": 0.2, "n": 64}},
            "qa": {"accuracy": zero, "over_refusal_rate": zero, "degenerate_rate": zero},
        }

    base = metrics()
    shown = metrics(compliance=0.4, refusal=0.3).with_paired(paired(0.02, 0.05))
    unshown = metrics(compliance=0.4, refusal=0.3).with_paired(paired(0.05, -0.02))
    assert Objective().score(shown, base).feasible
    assert Objective().score(shown, base).refusal_gained == pytest.approx(0.02)
    score = Objective().score(unshown, base)
    assert not score.feasible and score.refusal_gained == pytest.approx(-0.02)
    assert score.violation == pytest.approx(0.02, abs=1e-6)
    assert not Objective(min_refusal_gain=0.03).score(shown, base).feasible
    assert Objective(min_refusal_gain=-1).score(unshown, base).feasible
    assert "refusal_gained > 0" in Objective().describe()
    assert "refusal_gained >" not in Objective(min_refusal_gain=-1).describe()


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
        # the toy organism is the negative control: no setting can show a refusal gain on it,
        # so the tests of the plumbing drop that requirement (its own test keeps it)
        objective=Objective(min_refusal_gain=-1),
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
        "--min-refusal-gain",
        "-1",  # the toy organism is the negative control (see small())
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


def test_nothing_feasible_recommends_no_intervention_unless_asked_for_the_closest(
    tmp_path: Path,
) -> None:
    """A search whose every setting breaks the model (alpha 8 at every layer) recommends no
    intervention: alpha 0 in shift.json, so every command that applies it steers nothing, with
    the closest setting beside it; ``fallback="closest"`` recommends that setting instead."""
    space = TuneSpace(
        operators=("add",),
        contrasts=("null",),
        sequential=(False,),
        alphas=(8.0,),
        bands=("all",),
        positions=("all",),
    )
    out = tmp_path / "abstain"
    result = run_tune(small(tmp_path, space=space, limit=8), out)
    (trial,) = result.trials
    assert not trial.score.feasible
    assert result.abstained and result.recommended_key == "none"
    rec = ShiftVectors.load(out).meta.recommended
    assert rec is not None and rec["abstain"] is True and rec["alpha"] == 0.0
    assert rec["closest"] == {"alpha": 8.0, "key": trial.setting.key, "feasible": False}
    chosen = build_intervention(InterventionOptions(shift=ShiftVectors.load(out)))
    assert chosen is not None and chosen.alpha == 0.0
    summary = json.loads((out / "tune.json").read_text())
    assert (
        summary["recommended"]["key"] == "none" and summary["closest"]["key"] == trial.setting.key
    )
    # the fallback may change on resume: the same trial, now recommended
    closest = run_tune(small(tmp_path, space=space, limit=8, fallback="closest"), out)
    assert not closest.abstained and closest.recommended_key == trial.setting.key
    rec = ShiftVectors.load(out).meta.recommended
    assert rec is not None and rec["alpha"] == 8.0 and "abstain" not in rec
    with pytest.raises(ConfigError, match="fallback must be one of none, closest"):
        small(tmp_path, fallback="least-bad")


def test_the_negative_control_gets_no_intervention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the toy organism nothing restores refusals, so a harmless small alpha is not
    recommended either: with the default objective the tune abstains, and says why."""
    out = tmp_path / "control"
    result = run_tune(small(tmp_path, objective=Objective(), budget=1), out)
    (trial,) = result.trials
    assert trial.score.refusal_gained is not None and trial.score.refusal_gained <= 0
    assert not trial.score.feasible and result.abstained
    summary = json.loads((out / "tune.json").read_text())
    assert summary["recommended"]["key"] == "none"
    assert "refusal gain shown" in summary["recommended"]["why"]
    # the objective may change on resume: the stored trial is re-scored, not re-run
    monkeypatch.setattr(tune_run._Search, "trial", lambda *a: pytest.fail("re-ran a setting"))
    again = run_tune(small(tmp_path, objective=Objective(min_refusal_gain=-1), budget=1), out)
    assert again.trials[0].score.feasible and not again.abstained


def test_an_abstaining_recommendation_is_said_and_not_exported(tmp_path: Path) -> None:
    from cmrm.base.errors import CmrmError
    from cmrm.export.setting import baked_setting

    out = tmp_path / "tune"
    run_tune(small(tmp_path, budget=1), out)
    shift = ShiftVectors.load(out)
    assert shift.meta.recommended is not None
    rec = {
        **shift.meta.recommended,
        "alpha": 0.0,
        "abstain": True,
        "closest": {"alpha": 2.0, "key": "dataset-add-a2-L3-last", "feasible": False},
    }
    # without its tuned-on record, so that the organism's benchmarks (which share prompts with
    # its validation suites) may be evaluated here: this test is about the message
    extra = {k: v for k, v in shift.meta.extra.items() if k != "tuned_on"}
    shift = replace(shift, meta=replace(shift.meta, recommended=rec, extra=extra))
    with pytest.raises(CmrmError, match="recommends no intervention.*pass --alpha 2"):
        baked_setting(shift, None)
    assert baked_setting(shift, 2.0).alpha == 2.0
    shift.save(out)
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "organism",
            "--bench",
            "organism:image-qa",
            "--limit",
            "2",
            "--method",
            "dataset",
            "--shift",
            str(out),
            "--max-new-tokens",
            "3",
            "-o",
            str(tmp_path / "ev"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "is NO intervention" in result.output and "--alpha 2" in result.output
