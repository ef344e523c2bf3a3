"""``cmrm gap``: the representation gap between text-only and image-conditioned hidden states."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .app import app, cli_errors, load_data
from .choices import NULLS_LISTED
from .options import (
    AlphaOpt,
    DeviceOpt,
    DtypeOpt,
    InterventionFlags,
    LayersPathOpt,
    ModelArg,
    ModelChoice,
    OperatorOpt,
    PositionsOpt,
    RemoteOpt,
    SampleLevelOpt,
    ShiftDirOpt,
    load_model,
)


@app.command()
@cli_errors
def gap(
    model: ModelArg = "organism",
    data: Annotated[str, typer.Option("--data", help="Benchmark NAME[:split] or a JSONL file.")] = (
        "organism:harmful-image"
    ),
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")] = Path("gap"),
    layers: Annotated[
        str,
        typer.Option(
            "--measure-layers",
            "--layers",
            help="Layers to MEASURE the gap at: all, 12, 10,12,14 or 8:16 (--layers is the old "
            "name; the layers to steer are --steer-layers, as --layers is in generate and serve).",
        ),
    ] = "all",
    null: Annotated[
        str, typer.Option(help=f"Comma list of null images, each {NULLS_LISTED}, e.g. blank,noise.")
    ] = "blank",
    shift: ShiftDirOpt = None,
    sample_level: SampleLevelOpt = False,
    alpha: AlphaOpt = None,
    operator: OperatorOpt = None,
    positions: PositionsOpt = None,
    steer_layers: Annotated[
        str | None,
        typer.Option(
            help="Layers to steer with --shift (default: recommended, else all the shift has)."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use at most N items.")] = None,
    root: Annotated[Path | None, typer.Option(help="Local benchmark folder.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    max_samples: Annotated[
        int, typer.Option(min=2, help="Samples kept per variant for the probe and PCA.")
    ] = 256,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Measure the gap per layer; write metrics.json, figures/ and summary.md to the output."""
    from ..analysis.gap import run_gap
    from ..base.errors import ConfigError
    from ..data.images import NullImage
    from ..models.checks import check_items_fit, check_layers, check_output_dir, peek_num_layers

    choice = ModelChoice(model, dtype, device, layers_path, trust_remote_code).check()
    check_output_dir(output, "gap output folder")
    nulls = tuple(NullImage.parse(spec) for spec in null.split(",") if spec.strip())
    specs = [n.spec for n in nulls]
    if not nulls or len(set(specs)) != len(specs):
        raise ConfigError(
            f"--null {null!r}: give one or more null images, each once (they repeat or are "
            "missing); e.g. --null blank,noise"
        )
    flags = InterventionFlags(shift, sample_level, alpha, operator, positions, steer_layers)
    loaded, intervention = flags.build(default_positions="last")
    check_layers(
        layers,
        peek_num_layers(model, layers_path=layers_path, trust_remote_code=trust_remote_code),
    )
    items = load_data(data, root=root, limit=limit)
    vlm = load_model(choice)
    vlm.layers.resolve(layers)
    if loaded is not None:
        loaded.check_compatible(vlm.model_type, vlm.hidden_size, vlm.num_layers)
    check_items_fit(vlm, items, f"data {data!r}")
    report = run_gap(
        vlm,
        items,
        out_dir=output,
        layers=layers,
        nulls=nulls,
        intervention=intervention,
        batch_size=batch_size,
        show_progress=True,
        max_samples=max_samples,
        meta={"data": data},
    )
    largest = report.largest_gap_layer
    typer.echo(
        json.dumps({"output": str(output), "items": len(items), "largest_gap_layer": largest})
    )
