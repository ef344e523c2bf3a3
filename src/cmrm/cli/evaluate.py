"""Evaluation commands: ``cmrm eval`` (resumable grid runs) and ``cmrm report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, cli_errors, resumable
from .choices import (
    BASELINES_LISTED,
    CONTRASTS_LISTED,
    ESTIMATORS_LISTED,
    JUDGES_LISTED,
    NULLS_LISTED,
    OPERATORS_LISTED,
    POSITIONS_LISTED,
    SOURCES_LISTED,
)
from .options import (
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    LayersPathOpt,
    MaxMemoryOpt,
    ModelArg,
    OffloadOpt,
    RemoteOpt,
)


@app.command("eval")
@cli_errors
def eval_command(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Run folder (created; re-run to resume).")
    ],
    model: ModelArg = "organism",
    bench: Annotated[
        list[str] | None,
        typer.Option("--bench", help="Benchmark name, NAME:split or FILE.jsonl; repeat."),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            "--methods",
            help=f"Comma list of {BASELINES_LISTED} (baselines) and {SOURCES_LISTED} "
            "(interventions) (default: none,dataset,sample; dataset needs --shift or --anchors).",
        ),
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(
            "--operator",
            "--operators",
            help=f"Comma list of operators for dataset/sample: {OPERATORS_LISTED} (default: add, "
            "the paper's).",
        ),
    ] = None,
    method_option: Annotated[
        list[str] | None,
        typer.Option(help="BASELINE.KEY=VALUE, e.g. ecso.self_check=true."),
    ] = None,
    alpha: Annotated[
        str | None,
        typer.Option(
            "--alpha", "--alphas", help="Comma list of alphas for dataset/sample (default: 1)."
        ),
    ] = None,
    positions: Annotated[
        str | None, typer.Option(help=f"{POSITIONS_LISTED} (default: all).")
    ] = None,
    layers: Annotated[
        str | None, typer.Option(help="Layers to steer: all, 4:12, 1,3 (default: all).")
    ] = None,
    shift: Annotated[
        str | None, typer.Option(help="Calibrated shift directory (method dataset).")
    ] = None,
    anchors: Annotated[
        str | None, typer.Option(help="Calibrate on this set first, e.g. vlsafe:anchor.")
    ] = None,
    estimator: Annotated[
        str | None,
        typer.Option(
            "--estimator",
            "--estimators",
            help=f"{ESTIMATORS_LISTED} (with --anchors) (default: mean).",
        ),
    ] = None,
    sequential: Annotated[
        bool,
        typer.Option("--sequential", help="Calibrate sequentially (with --anchors)."),
    ] = False,
    contrast: Annotated[
        str | None,
        typer.Option(
            "--contrast",
            "--contrasts",
            help=f"{CONTRASTS_LISTED} (null, the paper's: text vs null image) (default: null).",
        ),
    ] = None,
    null: Annotated[
        str | None,
        typer.Option(help=f"Null image: {NULLS_LISTED} (default: blank)."),
    ] = None,
    judge: Annotated[
        list[str] | None,
        typer.Option(
            "--judge",
            help=f"JUDGE for all, or BENCH=JUDGE; repeat. Judges: {JUDGES_LISTED}.",
        ),
    ] = None,
    judge_option: Annotated[
        list[str] | None, typer.Option(help="JUDGE.KEY=VALUE, e.g. llm.model=org/id.")
    ] = None,
    bench_option: Annotated[
        list[str] | None, typer.Option(help="BENCH.KEY=VALUE loader option.")
    ] = None,
    root: Annotated[
        list[str] | None, typer.Option("--root", help="Data root DIR, or BENCH=DIR; repeat.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="First N items per benchmark.")] = None,
    batch_size: Annotated[
        str | None,
        typer.Option(
            help="Generation and judging batch size, or auto (CUDA: back off on OOM) (default: 8)."
        ),
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Tokens generated per answer (default: 128).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Split and bootstrap seed (default: 0).")] = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    offload_folder: OffloadOpt = None,
    preset: Annotated[
        str | None, typer.Option(help="'paper': the paper's protocol; flags override it.")
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="Judge model of --preset paper.")] = None,
) -> None:
    """Generate, judge and summarise every (benchmark, method, alpha) cell; re-run to resume.

    Under torchrun (or accelerate launch) the rows are sharded across the ranks; see docs/scale.md.
    """
    from ..base.distributed import World
    from ..evaluation import run_eval
    from ..evaluation.options import build_config, split_list
    from ..generation.batching import parse_batch_size

    specs = [b for spec in bench or () for b in split_list(spec)]
    check_specs([*specs, *([anchors] if anchors else [])])
    config = build_config(
        model,
        preset=preset,
        judge_model=judge_model,
        benches=specs,
        methods=method,
        operators=operator,
        method_options=method_option or (),
        alphas=alpha,
        judges=judge or (),
        roots=root or (),
        judge_options=judge_option or (),
        bench_options=bench_option or (),
        positions=positions,
        layers=layers,
        shift=shift,
        anchors=anchors,
        estimator=estimator,
        sequential=sequential or None,
        contrast=contrast,
        null=null,
        limit=limit,
        batch_size=parse_batch_size(batch_size),
        max_new_tokens=max_new_tokens,
        seed=seed,
        dtype=dtype,
        device=device,
        layers_path=layers_path,
        trust_remote_code=trust_remote_code,
        device_map=device_map,
        max_memory=max_memory,
        offload_folder=offload_folder,
    )
    world = World.from_env()
    if config.applied is not None and world.is_main:
        typer.echo(config.applied, err=True)
    with resumable(output, say=world.is_main):
        summary = run_eval(config, output, show_progress=True, world=world)
    if not world.is_main:
        return
    typer.echo(summary.table())
    typer.echo(f"\nwrote {output / 'summary.json'}; `cmrm report {output}` for plots", err=True)


def check_specs(specs: list[str]) -> None:
    """Every benchmark spec names a benchmark (or a file) and a valid split, before anything
    else is checked, so that an unknown name is the error the user sees."""
    from ..data import parse_spec

    for spec in specs:
        parse_spec(spec)


@app.command("report")
@cli_errors
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `cmrm eval -o`.")],
) -> None:
    """Write report.md and report.html (tables, plots, examples) into RUN_DIR."""
    from ..base.errors import DataError
    from ..models.checks import check_output_dir
    from ..report import write_report

    if not run_dir.is_dir():
        what = "a file" if run_dir.exists() else "not found"
        raise DataError(
            f"{run_dir} is {what}; `cmrm report` takes the run folder given to `cmrm eval -o`"
        )
    for name in ("config.json", "summary.json"):
        if not (run_dir / name).is_file():
            raise DataError(
                f"{run_dir} has no {name}, so it is not a finished `cmrm eval` run folder; "
                f"run (or resume) `cmrm eval ... -o {run_dir}` first"
            )
    check_output_dir(run_dir, "run folder")
    md, page = write_report(run_dir)
    typer.echo(f"{md}\n{page}")
