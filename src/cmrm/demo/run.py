"""Run the demo on a bundled organism: calibrate, tune on validation, evaluate held out, report.

Steps (calibration and tuning never see a held-out suite):

1. load the organism (``organism``, ``organism-smol``, or a directory trained with its recipe);
2. the paper's dataset-level shift (``mean``, blank null image, independent) on the anchors,
   saved to ``OUT/shift``;
3. ``cmrm tune`` on the profile's validation suites (``OUT/tune``): the recommended setting;
4. held-out evaluation with ``cmrm eval``'s runner: the baselines (``none``, ``text-only``,
   ``adashield``, ``ecso``) and the paper's CMRM (dataset- and sample-level ``add`` at every
   layer and position) in ``OUT/runs/paper``; then, for every operator, its best setting on
   validation in ``OUT/runs/<setting>`` — one of which is the recommendation;
5. the representation gap on the held-out harmful+image suite, with and without the recommended
   intervention (``OUT/gap``), including the null-image fidelity;
6. ``OUT/summary.json``, ``OUT/report.md`` and figures; the table is returned for printing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..base.errors import CmrmError
from ..calibration.shift import library_versions
from ..evaluation import EvalConfig, run_eval
from ..models.vlm import VLM
from ..tuning import TuneConfig, TuneResult, run_tune
from ..tuning.objective import rank_key
from ..tuning.result import Trial
from .paired import attach_paired
from .profiles import DemoProfile, get_profile
from .records import (
    DemoRecord,
    DemoResult,
    SettingInfo,
    check_targets,
    mark_recommended,
    none_metrics,
    records_from_summary,
)
from .render import write_outputs

logger = logging.getLogger(__name__)

BASELINES = ("none", "text-only", "adashield", "ecso")


@dataclass(frozen=True)
class DemoConfig:
    """Knobs of ``cmrm demo``; the defaults are what ``make demo`` runs."""

    out_dir: Path = Path("cmrm-demo")
    organism: str = "organism"
    """The bundled organism (its :class:`DemoProfile`)."""
    weights: Path | None = None
    """A directory trained with the organism's recipe (default: the shipped weights)."""
    limit: int | None = None
    """Held-out items per suite (default: the profile's)."""
    budget: int | None = None
    """At most this many tune settings (default: the profile's)."""
    val_limit: int | None = None
    """Validation items per suite for tune (default: the profile's)."""
    anchor_limit: int | None = None
    """Anchors used for calibration (default: the profile's)."""
    gap: bool = True
    quick: bool = False
    """The profile's smoke-run sizes (small suites and grid: not powered; labelled as such)."""

    def __post_init__(self) -> None:
        get_profile(self.organism)
        for name in ("limit", "budget", "val_limit", "anchor_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise CmrmError(f"{name} must be positive, got {value}")

    @property
    def profile(self) -> DemoProfile:
        """The organism's profile with this run's overrides applied."""
        base = get_profile(self.organism)
        if self.quick:
            base = replace(base, **base.quick)
        return replace(
            base,
            limit=self.limit or base.limit,
            budget=self.budget or base.budget,
            val_limit=self.val_limit or base.val_limit,
            anchor_limit=self.anchor_limit or base.anchor_limit,
        )


def load_model(config: DemoConfig) -> VLM:
    """The organism's shipped weights, or a directory trained with its recipe, as a VLM."""
    from ..models import load_bundled

    return load_bundled(config.profile.model, config.weights)


def _one_run(
    vlm: VLM, config: DemoConfig, name: str, show_progress: bool, **fields: Any
) -> tuple[EvalConfig, Any]:
    """One ``cmrm eval`` run of the demo, in ``OUT/runs/<name>``."""
    p = config.profile
    eval_config = EvalConfig(
        model=p.model,
        judge=p.judge,
        limit=p.limit,
        max_new_tokens=p.max_new_tokens,
        batch_size=p.batch_size,
        **fields,
    )
    path = config.out_dir / "runs" / name
    return eval_config, run_eval(eval_config, path, vlm=vlm, show_progress=show_progress)


def _eval(
    vlm: VLM,
    config: DemoConfig,
    name: str,
    show_progress: bool,
    unchanged: dict[str, Any],
    calibration: str = "paper",
    **fields: Any,
) -> list[DemoRecord]:
    """Records of intervention runs, on every suite but the text-only harmful one (no
    intervention changes a row without an image; its numbers are the ``none`` baseline's)."""
    p = config.profile
    benchmarks = tuple(s for s in p.suites if s != p.harmful_text)
    eval_config, run = _one_run(vlm, config, name, show_progress, benchmarks=benchmarks, **fields)
    info = SettingInfo(
        positions=eval_config.positions,
        layers=eval_config.layers,
        calibration=calibration,
        source="paper" if name == "paper" else "tune",
        run=name,
    )
    return records_from_summary(run, p, info, unchanged)


def _calibrate(vlm: VLM, config: DemoConfig, show_progress: bool) -> Path:
    """The paper's shift in ``OUT/shift``; a re-run reuses it when it was calibrated on the
    same anchors (same hash) with the same defaults."""
    from ..calibration.estimate import anchor_hash, calibrate
    from ..calibration.shift import ShiftVectors
    from ..data import load_items

    p = config.profile
    anchors = load_items(p.anchors, limit=p.anchor_limit)
    where = config.out_dir / "shift"
    if (where / "shift.json").exists():
        old = ShiftVectors.load(where)
        meta = old.meta
        if (
            meta.anchor_hash == anchor_hash(anchors)
            and not meta.sequential
            and (meta.estimator, meta.contrast) == ("mean", "null")
            and meta.num_layers == vlm.num_layers
        ):
            logger.info("demo: reusing the paper's shift in %s (same anchors)", where)
            return where
    shift = calibrate(vlm, anchors, batch_size=p.batch_size, show_progress=show_progress)
    return shift.save(where)


def _tune(vlm: VLM, config: DemoConfig, show_progress: bool) -> TuneResult:
    p = config.profile
    tune = TuneConfig(
        model=p.model,
        anchors=p.anchors,
        val=p.val,
        space=p.tune,
        judge=p.judge,
        limit=p.val_limit,
        anchor_limit=p.anchor_limit,
        max_new_tokens=p.max_new_tokens,
        batch_size=p.batch_size,
        budget=p.budget,
    )
    return run_tune(tune, config.out_dir / "tune", vlm=vlm, show_progress=show_progress)


def best_per_operator(result: TuneResult) -> list[Trial]:
    """Each operator's best setting on validation (the recommendation among them), and the
    paper's CMRM made non-compounding — ``add`` at every layer and position on a sequential
    calibration — at its best validation alpha, when the search tried it."""
    best: dict[str, Trial] = {}
    for trial in result.trials:
        op = trial.setting.operator
        if op not in best or rank_key(trial.score) < rank_key(best[op].score):
            best[op] = trial
    chosen = sorted(best.values(), key=lambda t: rank_key(t.score))
    sequential = [t for t in result.trials if _paper_sequential(t)]
    if sequential:
        top = min(sequential, key=lambda t: rank_key(t.score))
        if all(t.setting.key != top.setting.key for t in chosen):
            chosen.append(top)
    return chosen


def _paper_sequential(trial: Trial) -> bool:
    s = trial.setting
    return (
        s.source == "dataset"
        and s.operator == "add"
        and s.band == "all"
        and s.positions == "all"
        and s.variant.sequential
        and s.variant.contrast == "null"
    )


def _held_out(
    vlm: VLM, config: DemoConfig, shift_dir: Path, tuned: TuneResult, show_progress: bool
) -> list[DemoRecord]:
    p = config.profile
    _, baselines = _one_run(
        vlm, config, "baselines", show_progress, benchmarks=p.suites, methods=BASELINES
    )
    unchanged = {p.harmful_text: none_metrics(baselines)[p.harmful_text]}
    records = records_from_summary(baselines, p, SettingInfo(positions="all", run="baselines"))
    recommended = "none" if tuned.abstained else ""
    for trial in best_per_operator(tuned):
        s = trial.setting
        found = _eval(
            vlm,
            config,
            s.key,
            show_progress,
            unchanged,
            methods=(s.source,),
            operators=(s.operator,),
            alphas=(s.alpha,),
            positions=s.positions,
            layers=s.layers,
            contrast=s.variant.contrast,
            shift=str(config.out_dir / "tune" / "variants" / s.variant.key),
            calibration=s.variant.key,
        )
        if not tuned.abstained and s.key == tuned.recommended.setting.key and found:
            recommended = found[0].label
        records.extend(found)
    # the paper's CMRM last: on organism-smol it degenerates, and the settings chosen on
    # validation are what the run is for
    records += _eval(
        vlm,
        config,
        "paper",
        show_progress,
        unchanged,
        methods=p.paper_methods,
        alphas=p.paper_alphas,
        positions="all",
        shift=str(shift_dir),
    )
    records = attach_paired(records, config.out_dir / "runs", p)
    return mark_recommended(records, recommended)


def _gap(vlm: VLM, config: DemoConfig, tuned: TuneResult, show_progress: bool) -> dict[str, Any]:
    from ..analysis.gap import run_gap
    from ..calibration.shift import ShiftVectors
    from ..data import load_items
    from ..data.images import NullImage
    from ..interventions.build import InterventionOptions, build_intervention

    p = config.profile
    shift = ShiftVectors.load(config.out_dir / "tune")
    intervention = build_intervention(InterventionOptions(shift=shift))
    report = run_gap(
        vlm,
        load_items(p.harmful_image, limit=p.limit),
        out_dir=config.out_dir / "gap",
        nulls=(NullImage(),),
        intervention=intervention,
        batch_size=p.batch_size,
        show_progress=show_progress,
        meta={"data": p.harmful_image, "intervention": "tune's recommendation"},
    )
    largest = report.layer(report.largest_gap_layer)
    fidelity = {k: v.to_json() for k, v in largest.null_fidelity.items()}
    closed = largest.gap_closed if math.isfinite(largest.gap_closed) else None
    return {
        "largest_gap_layer": report.largest_gap_layer,
        "gap_closed_at_largest": closed,
        "null_fidelity_at_largest": fidelity,
        "layers": report.to_json()["layers"],
    }


def run_demo(config: DemoConfig | None = None, *, show_progress: bool = False) -> DemoResult:
    """Run every step and write ``summary.json``, ``report.md`` and figures to ``out_dir``."""
    config = config or DemoConfig()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    # The tiny organism runs far faster on one thread than on two contended ones.
    torch.set_num_threads(config.profile.threads)
    try:
        return _run(config, show_progress)
    finally:
        torch.set_num_threads(threads)


def _run(config: DemoConfig, show_progress: bool) -> DemoResult:
    from .pareto import pareto_plot
    from .render import PARETO, tune_summary

    vlm = load_model(config)
    shift_dir = _calibrate(vlm, config, show_progress)
    tuned = _tune(vlm, config, show_progress)
    records = _held_out(vlm, config, shift_dir, tuned, show_progress)
    gap = _gap(vlm, config, tuned, show_progress) if config.gap else None
    closed = None if gap is None else gap["gap_closed_at_largest"]
    targets = check_targets(records, config.profile, closed)
    result = DemoResult(
        config.profile,
        tuple(records),
        targets,
        tune_summary(tuned),
        gap,
        config.out_dir,
        quick=config.quick,
    )
    pareto_plot(tuned, config.out_dir / PARETO)
    header = {
        "config": {
            "organism": config.organism,
            "weights": None if config.weights is None else str(config.weights),
            "limit": config.profile.limit,
            "val_limit": config.profile.val_limit,
            "anchor_limit": config.profile.anchor_limit,
            "budget": config.profile.budget,
            "gap": config.gap,
            "quick": config.quick,
            "protocol": "quick (smoke run, not powered)" if config.quick else "powered",
        },
        "versions": library_versions(),
    }
    write_outputs(result, header)
    logger.info("demo outputs in %s", config.out_dir)
    return result
