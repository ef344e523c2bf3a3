"""Evaluation commands: ``cmrm eval`` (resumable grid runs) and ``cmrm report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app, cli_errors


@app.command("eval")
@cli_errors
def eval_command(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Run directory (created; re-run to resume).")
    ],
    model: Annotated[
        str, typer.Argument(help="Hub id, local directory, or 'organism'.")
    ] = "organism",
    bench: Annotated[
        list[str] | None,
        typer.Option("--bench", help="Benchmark name, NAME:split or FILE.jsonl; repeat."),
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="Comma list of none,dataset,sample,text-only.")
    ] = None,
    alpha: Annotated[
        str | None, typer.Option(help="Comma list of alphas for dataset/sample.")
    ] = None,
    positions: Annotated[str | None, typer.Option(help="all, text or last.")] = None,
    layers: Annotated[str | None, typer.Option(help="Layers to steer: all, 4:12, 1,3.")] = None,
    shift: Annotated[
        str | None, typer.Option(help="Calibrated shift directory (method dataset).")
    ] = None,
    anchors: Annotated[
        str | None, typer.Option(help="Calibrate on this set first, e.g. vlsafe:anchor.")
    ] = None,
    estimator: Annotated[str | None, typer.Option(help="mean or pc1 (with --anchors).")] = None,
    contrast: Annotated[
        str | None, typer.Option(help="null (the paper: text vs null image) or image.")
    ] = None,
    null: Annotated[
        str | None, typer.Option(help="Null image: blank[:colour], noise[:dist][:seed], mean.")
    ] = None,
    judge: Annotated[
        list[str] | None, typer.Option("--judge", help="JUDGE for all, or BENCH=JUDGE; repeat.")
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
        typer.Option(help="Generation and judging batch size, or auto (CUDA: back off on OOM)."),
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Tokens generated per answer.")] = None,
    seed: Annotated[int | None, typer.Option(help="Split and bootstrap seed.")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32, bfloat16 or float16.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N or auto.")] = None,
    layers_path: Annotated[
        str | None,
        typer.Option(help="Explicit decoder-layer path, e.g. model.language_model.layers."),
    ] = None,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Allow code from the model repository.")
    ] = False,
    device_map: Annotated[
        str | None,
        typer.Option(help="Spread the model over GPUs/CPU/disk: auto, balanced, or a JSON map."),
    ] = None,
    max_memory: Annotated[
        str | None, typer.Option(help="Per device for --device-map, e.g. 0=20GiB,cpu=64GiB.")
    ] = None,
    offload_folder: Annotated[
        str | None, typer.Option(help="Folder for weights --device-map puts on disk.")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="'paper': the paper's protocol; flags override it.")
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="Judge model of --preset paper.")] = None,
) -> None:
    """Generate, judge and summarise every (benchmark, method, alpha) cell; re-run to resume.

    Under torchrun (or accelerate launch) the rows are sharded across the ranks; see docs/scale.md.
    """
    from ..batching import parse_batch_size
    from ..distributed import World
    from ..evaluation import run_eval
    from ..evaluation.options import build_config

    config = build_config(
        model,
        preset=preset,
        judge_model=judge_model,
        benches=bench or (),
        methods=method,
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
    summary = run_eval(config, output, show_progress=True, world=world)
    if not world.is_main:
        return
    typer.echo(summary.table())
    typer.echo(f"\nwrote {output / 'summary.json'}; `cmrm report {output}` for plots", err=True)


@app.command("report")
@cli_errors
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `cmrm eval`.")],
) -> None:
    """Write report.md and report.html (tables, plots, examples) into RUN_DIR."""
    from ..report import write_report

    md, page = write_report(run_dir)
    typer.echo(f"{md}\n{page}")
