"""Core commands: inspect, calibrate, generate (each takes MODEL as its first argument)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from ..calibration.names import READ_POSITIONS
from .app import app, cli_errors, load_data
from .choices import (
    CONTRASTS_LISTED,
    ESTIMATORS_LISTED,
    NULLS_LISTED,
    POSITIONS_LISTED,
    READ_LISTED,
)
from .options import (
    AlphaOpt,
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    InterventionFlags,
    LayersPathOpt,
    MaxMemoryOpt,
    ModelArg,
    ModelChoice,
    NullOpt,
    OffloadOpt,
    OperatorOpt,
    PositionsOpt,
    RemoteOpt,
    SampleLevelOpt,
    ShiftDirOpt,
    load_model,
    only_with,
)

if TYPE_CHECKING:
    from ..calibration.names import Contrast, Estimator, ReadPosition


@app.command()
@cli_errors
def inspect(
    model: ModelArg = "organism",
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    offload_folder: OffloadOpt = None,
) -> None:
    """Print family, decoder path, number of layers, hidden size and image-token count as JSON."""
    from ..models.introspect import describe

    choice = ModelChoice(
        model, dtype, device, layers_path, trust_remote_code, device_map, max_memory, offload_folder
    ).check()
    typer.echo(json.dumps(describe(load_model(choice)), indent=2))


@app.command()
@cli_errors
def calibrate(
    model: ModelArg = "organism",
    anchors: Annotated[
        str, typer.Option("--anchors", help="Anchor set: a JSONL file or BENCH[:split].")
    ] = "",
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the shift.")] = Path(
        "shift"
    ),
    null: Annotated[str, typer.Option(help=f"Null image: {NULLS_LISTED}.")] = "blank",
    estimator: Annotated[str, typer.Option(help=f"{ESTIMATORS_LISTED}.")] = "mean",
    contrast: Annotated[str, typer.Option(help=f"{CONTRASTS_LISTED} (null: the paper's).")] = (
        "null"
    ),
    sequential: Annotated[
        bool,
        typer.Option(
            "--sequential",
            help="Measure layer l with layers < l already steered (no compounding).",
        ),
    ] = False,
    alpha: Annotated[
        float, typer.Option(help="With --sequential: alpha at which earlier layers are steered.")
    ] = 1.0,
    positions: Annotated[
        str,
        typer.Option(
            help=f"With --sequential: positions steered while calibrating: {POSITIONS_LISTED}."
        ),
    ] = "all",
    carry_budget: Annotated[
        float,
        typer.Option(
            "--carry-budget-mib",
            min=0,
            help="With --sequential: MiB of carried anchor states kept in memory between "
            "layers; beyond it they wait on disk, one batch in memory at a time (0: always).",
        ),
    ] = 1024.0,
    layers: Annotated[str, typer.Option(help="all, 12, 10,12,14 or 8:16.")] = "all",
    read: Annotated[str, typer.Option(help=f"Read position: {READ_LISTED}.")] = "last",
    gate: Annotated[
        bool,
        typer.Option(
            "--gate",
            help="Also fit the null-space-constrained read-out the alphasteer operator needs "
            "(keeps the anchors' states: memory grows with the anchor count).",
        ),
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    limit: Annotated[int | None, typer.Option(min=1, help="Use at most N anchors.")] = None,
    root: Annotated[Path | None, typer.Option(help="Local benchmark folder.")] = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    offload_folder: OffloadOpt = None,
) -> None:
    """Estimate a dataset-level shift (text-only minus null-image states) and save it.

    Under torchrun, every rank runs a share of the anchor batches and rank 0 saves the shift.
    """
    from ..base import distributed
    from ..calibration.estimate import calibrate as run_calibrate
    from ..calibration.names import CONTRASTS, ESTIMATORS
    from ..data.images import NullImage
    from ..models.checks import check_choice, check_items_fit, check_layers, check_output_dir
    from ..models.checks import peek_num_layers as peek

    if not anchors:
        raise typer.BadParameter("give the anchor set with --anchors FILE.jsonl or BENCH[:split]")
    choice = ModelChoice(
        model, dtype, device, layers_path, trust_remote_code, device_map, max_memory, offload_folder
    ).check()
    check_output_dir(output, "shift folder")
    null_image = NullImage.parse(null)
    check_choice("--estimator", estimator, ESTIMATORS)
    check_choice("--contrast", contrast, CONTRASTS)
    check_choice("--read", read, READ_POSITIONS)
    check_layers(layers, peek(model, layers_path=layers_path, trust_remote_code=trust_remote_code))
    items = load_data(anchors, root=root, limit=limit)
    world = distributed.start()
    vlm = load_model(choice)
    vlm.layers.resolve(layers)
    check_items_fit(vlm, items, f"anchor set {anchors!r}")
    shift = run_calibrate(
        vlm,
        items,
        null=null_image,
        estimator=cast("Estimator", estimator),
        layers=layers,
        contrast=cast("Contrast", contrast),
        read=cast("ReadPosition", read),
        sequential=sequential,
        calibration_alpha=alpha,
        positions=positions,
        batch_size=batch_size,
        show_progress=world.is_main,
        world=world,
        gate=gate,
        carry_budget=int(carry_budget * 2**20),
    )
    distributed.main_first(world, lambda: shift.save(output))
    if not world.is_main:
        return
    typer.echo(
        json.dumps(
            {
                "output": str(output),
                "layers": len(shift.layers),
                "anchors": len(items),
                "sequential": sequential,
                "safety_axes": shift.axes is not None,
                "norms": shift.norms(),
            }
        )
    )


@app.command()
@cli_errors
def generate(
    model: ModelArg,
    prompt: Annotated[str, typer.Argument(help="The request.")],
    image: Annotated[Path | None, typer.Option(help="Image file (omit for text only).")] = None,
    shift: ShiftDirOpt = None,
    sample_level: SampleLevelOpt = False,
    alpha: AlphaOpt = None,
    operator: OperatorOpt = None,
    positions: PositionsOpt = None,
    layers: Annotated[
        str | None,
        typer.Option(help="Layers to steer: all, 12, 10,12,14 or 8:16 (default: recommended)."),
    ] = None,
    null: NullOpt = None,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 128,
    sample: Annotated[bool, typer.Option("--sample", help="Sample instead of greedy.")] = False,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature (default: 1; needs --sample).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (default: 0).")] = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    offload_folder: OffloadOpt = None,
) -> None:
    """Generate an answer to PROMPT, optionally with CMRM; the answer is streamed to stdout.

    --shift DIR with --sample-level uses per-input vectors and the shift's safety axes (for the
    operators that need them)."""
    from ..data.images import load_image
    from ..generation.generate import GenerationOptions, stream_answer
    from ..models.checks import check_layers, check_prompt, check_prompt_fits
    from ..models.checks import peek_num_layers as peek

    check_prompt(prompt)
    only_with({"--null": null}, sample_level, "--sample-level")
    only_with({"--temperature": temperature, "--seed": seed}, sample, "--sample")
    choice = ModelChoice(
        model, dtype, device, layers_path, trust_remote_code, device_map, max_memory, offload_folder
    ).check()
    flags = InterventionFlags(shift, sample_level, alpha, operator, positions, layers, null)
    loaded, intervention = flags.build()
    options = GenerationOptions(
        max_new_tokens=max_new_tokens,
        do_sample=sample,
        temperature=1.0 if temperature is None else temperature,
        seed=seed or 0,
    )
    check_layers(layers, peek(model, layers_path=layers_path, trust_remote_code=trust_remote_code))
    picture = load_image(image)
    vlm = load_model(choice)
    if layers is not None:
        vlm.layers.resolve(layers)
    if loaded is not None:
        loaded.check_compatible(vlm.model_type, vlm.hidden_size, vlm.num_layers)
    check_prompt_fits(vlm, prompt, picture)
    stream_answer(vlm, prompt, picture, intervention, options)
