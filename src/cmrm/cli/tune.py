"""``cmrm tune``: choose an intervention setting on validation benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..calibration.names import CONTRASTS, ESTIMATORS
from ..interventions.names import SOURCES
from ..models.names import POSITIONS
from .app import app, cli_errors, resumable
from .choices import JUDGES_LISTED, NULLS_LISTED, OPERATORS_LISTED, comma
from .options import DeviceOpt, DtypeOpt, LayersPathOpt, ModelArg, ModelChoice, RemoteOpt


@app.command()
@cli_errors
def tune(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output directory (re-run to resume).")
    ],
    model: ModelArg = "organism",
    anchors: Annotated[str, typer.Option(help="Calibration set, e.g. vlsafe:anchor.")] = "",
    val: Annotated[
        list[str] | None,
        typer.Option(help="Validation benchmark (repeat); disjoint from anchors and test sets."),
    ] = None,
    operators: Annotated[
        str | None,
        typer.Option(
            "--operators",
            "--operator",
            help=f"Comma list of {OPERATORS_LISTED} (default: every operator).",
        ),
    ] = None,
    estimators: Annotated[
        str | None,
        typer.Option(
            "--estimators",
            "--estimator",
            help=f"Comma list of {comma(ESTIMATORS)} (default: mean).",
        ),
    ] = None,
    contrasts: Annotated[
        str | None,
        typer.Option(
            "--contrasts", "--contrast", help=f"Comma list of {comma(CONTRASTS)} (default: both)."
        ),
    ] = None,
    sequential: Annotated[
        str, typer.Option(help="Calibrations to try: both, on (sequential) or off.")
    ] = "both",
    alphas: Annotated[
        str | None,
        typer.Option(
            "--alphas", "--alpha", help="Comma list of alphas (default: a log grid 0.125..2)."
        ),
    ] = None,
    bands: Annotated[
        str | None,
        typer.Option(help="Layer bands, comma list of all, auto, 10, 8:16 (default: auto)."),
    ] = None,
    positions: Annotated[
        str | None,
        typer.Option(help=f"Comma list of {comma(POSITIONS)} (default: last,all)."),
    ] = None,
    sources: Annotated[
        str | None, typer.Option(help=f"Comma list of {comma(SOURCES)} (default: dataset).")
    ] = None,
    budget: Annotated[int | None, typer.Option(min=1, help="At most N settings.")] = None,
    early_stop: Annotated[
        float | None,
        typer.Option(help="Skip a group's larger alphas once degenerate output grows this much."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Validation items per benchmark.")
    ] = None,
    anchor_limit: Annotated[int | None, typer.Option(min=1, help="Anchors used.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    null: Annotated[
        str | None, typer.Option(help=f"Null image: {NULLS_LISTED} (default: blank).")
    ] = None,
    w_compliance: Annotated[float, typer.Option(help="Weight of harmful compliance.")] = 1.0,
    w_degenerate: Annotated[float, typer.Option(help="Weight of degenerate output gained.")] = 1.0,
    w_utility: Annotated[float, typer.Option(help="Weight of utility lost.")] = 1.0,
    w_over_refusal: Annotated[float, typer.Option(help="Weight of over-refusal gained.")] = 1.0,
    max_degenerate_gain: Annotated[float, typer.Option(help="Constraint (fraction).")] = 0.05,
    max_utility_loss: Annotated[float, typer.Option(help="Constraint (fraction).")] = 0.05,
    max_over_refusal_gain: Annotated[float, typer.Option(help="Constraint (fraction).")] = 0.05,
    min_refusal_gain: Annotated[
        float,
        typer.Option(
            help="A recommended setting must show refusals rising by more than this (the lower "
            "bound of the paired interval, fraction); negative: no requirement."
        ),
    ] = 0.0,
    fallback: Annotated[
        str,
        typer.Option(
            help="When no setting meets the constraints: none (recommend no intervention) or "
            "closest (recommend the closest setting anyway)."
        ),
    ] = "none",
    judge: Annotated[
        list[str] | None,
        typer.Option("--judge", help=f"JUDGE for all, or BENCH=JUDGE. Judges: {JUDGES_LISTED}."),
    ] = None,
    judge_option: Annotated[list[str] | None, typer.Option(help="JUDGE.KEY=VALUE.")] = None,
    root: Annotated[list[str] | None, typer.Option("--root", help="DIR or BENCH=DIR.")] = None,
    bench_option: Annotated[list[str] | None, typer.Option(help="BENCH.KEY=VALUE.")] = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Calibrate, search operator x calibration x alpha x layers x positions on validation
    benchmarks, and write the shift with the recommended setting to the output directory."""
    from ..models.checks import check_output_dir
    from ..tuning import run_tune
    from ..tuning.options import build_tune_config
    from ..tuning.report import table

    choice = ModelChoice(model, dtype, device, layers_path, trust_remote_code).check()
    check_output_dir(output, "tune output folder")
    config = build_tune_config(
        model,
        anchors=anchors,
        val=val or (),
        operators=operators,
        estimators=estimators,
        contrasts=contrasts,
        sequential=sequential,
        alphas=alphas,
        bands=bands,
        positions=positions,
        sources=sources,
        objective={
            "w_compliance": w_compliance,
            "w_degenerate": w_degenerate,
            "w_utility": w_utility,
            "w_over_refusal": w_over_refusal,
            "max_degenerate_gain": max_degenerate_gain,
            "max_utility_loss": max_utility_loss,
            "max_over_refusal_gain": max_over_refusal_gain,
            "min_refusal_gain": min_refusal_gain,
        },
        judges=judge or (),
        judge_options=judge_option or (),
        roots=root or (),
        bench_options=bench_option or (),
        budget=budget,
        early_stop=early_stop,
        fallback=fallback,
        limit=limit,
        anchor_limit=anchor_limit,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        null=null,
        dtype=choice.dtype,
        device=choice.device,
        layers_path=choice.layers_path,
        trust_remote_code=choice.trust_remote_code,
    )
    typer.echo(f"objective: {config.objective.describe()}", err=True)
    with resumable(output):
        result = run_tune(config, output, show_progress=True)
    typer.echo(table(result))
    if result.abstained:
        verdict = (
            f"\nrecommended: none, no intervention (0/{len(result.trials)} settings met the "
            f"constraints; the closest, {result.recommended.setting.key}, is in tune.json; "
            "`--fallback closest` recommends it instead)"
        )
    else:
        state = "meets" if result.recommended.score.feasible else "does NOT meet"
        verdict = (
            f"\nrecommended: {result.recommended.setting.key} ({state} the constraints; "
            f"{result.feasible}/{len(result.trials)} settings feasible)"
        )
    typer.echo(
        f"{verdict}\nwrote {output}/shift.json, "
        f"{output}/tune.jsonl, {output}/tune.json and {output}/pareto.png"
    )
