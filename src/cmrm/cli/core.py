"""Core commands: inspect, calibrate, generate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from .app import app, cli_errors, load_data

if TYPE_CHECKING:
    from ..capture import ReadPosition
    from ..contrast import Contrast, Estimator
    from ..models.vlm import VLM

ModelArg = Annotated[
    str, typer.Argument(help="Hub id, local directory saved with save_pretrained, or 'organism'.")
]
DtypeOpt = Annotated[
    str | None,
    typer.Option("--dtype", help="float32, bfloat16 or float16 (default: checkpoint's)."),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda, cuda:N or auto (default: cpu).")
]
LayersPathOpt = Annotated[
    str | None,
    typer.Option(
        "--layers-path", help="Explicit decoder-layer path, e.g. model.language_model.layers."
    ),
]
RemoteOpt = Annotated[
    bool, typer.Option("--trust-remote-code", help="Allow code from the model repository.")
]


def load_model(
    model: str,
    dtype: str | None,
    device: str | None,
    layers_path: str | None,
    trust_remote_code: bool = False,
) -> VLM:
    from ..models import load_vlm

    return load_vlm(
        model,
        dtype=dtype,
        device=device,
        layers_path=layers_path,
        trust_remote_code=trust_remote_code,
    )


@app.command()
@cli_errors
def inspect(
    model: ModelArg = "organism",
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Print family, decoder path, number of layers, hidden size and image-token count as JSON."""
    from ..introspect import describe

    vlm = load_model(model, dtype, device, layers_path, trust_remote_code)
    typer.echo(json.dumps(describe(vlm), indent=2))


@app.command()
@cli_errors
def calibrate(
    model: ModelArg = "organism",
    anchors: Annotated[
        str, typer.Option("--anchors", help="Anchor set: a JSONL file or BENCH[:split].")
    ] = "",
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the shift.")] = Path(
        "shift"
    ),
    null: Annotated[
        str, typer.Option(help="blank[:colour] | noise[:dist][:seed] | mean")
    ] = "blank",
    estimator: Annotated[str, typer.Option(help="mean or pc1.")] = "mean",
    contrast: Annotated[str, typer.Option(help="null (paper) or image.")] = "null",
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
        str, typer.Option(help="With --sequential: positions steered while calibrating.")
    ] = "all",
    layers: Annotated[str, typer.Option(help="all, 12, 10,12,14 or 8:16.")] = "all",
    read: Annotated[str, typer.Option(help="Read position: last or mean.")] = "last",
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    limit: Annotated[int | None, typer.Option(min=1, help="Use at most N anchors.")] = None,
    root: Annotated[Path | None, typer.Option(help="Local benchmark folder.")] = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Estimate a dataset-level shift (text-only minus null-image states) and save it."""
    from ..estimate import calibrate as run_calibrate
    from ..images import NullImage

    if not anchors:
        raise typer.BadParameter("give the anchor set with --anchors FILE.jsonl or BENCH[:split]")
    items = load_data(anchors, root=root, limit=limit)
    vlm = load_model(model, dtype, device, layers_path, trust_remote_code)
    shift = run_calibrate(
        vlm,
        items,
        null=NullImage.parse(null),
        estimator=cast("Estimator", estimator),
        layers=layers,
        contrast=cast("Contrast", contrast),
        read=cast("ReadPosition", read),
        sequential=sequential,
        calibration_alpha=alpha,
        positions=positions,
        batch_size=batch_size,
        show_progress=True,
    )
    shift.save(output)
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
    prompt: Annotated[str, typer.Argument(help="The request.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Hub id, directory or organism.")
    ] = "organism",
    image: Annotated[Path | None, typer.Option(help="Image file (omit for text only).")] = None,
    shift: Annotated[
        Path | None, typer.Option(help="Shift directory from `cmrm calibrate`.")
    ] = None,
    sample_level: Annotated[bool, typer.Option("--sample-level", help="Per-input shift.")] = False,
    alpha: Annotated[
        float | None,
        typer.Option(help="Shift scale; 0 = no change (default: tune's recommendation, else 1)."),
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(help="add (the paper), project, norm-preserving or gated."),
    ] = None,
    positions: Annotated[str | None, typer.Option(help="all, text or last.")] = None,
    layers: Annotated[str | None, typer.Option(help="all, 12, 10,12,14 or 8:16.")] = None,
    null: Annotated[str | None, typer.Option(help="Null image for --sample-level.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 128,
    sample: Annotated[bool, typer.Option("--sample", help="Sample instead of greedy.")] = False,
    temperature: float = 1.0,
    seed: int = 0,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Generate an answer, optionally with CMRM; the answer is streamed to stdout."""
    from ..generate import GenerationOptions, stream_answer
    from ..images import load_image
    from ..interventions.build import InterventionOptions, build_intervention
    from ..shift import ShiftVectors

    loaded = ShiftVectors.load(shift) if shift is not None else None
    intervention = build_intervention(
        InterventionOptions(
            shift=loaded,
            sample_level=sample_level,
            alpha=alpha,
            operator=operator,
            positions=positions,
            layers=layers,
            null=null,
        )
    )
    options = GenerationOptions(
        max_new_tokens=max_new_tokens, do_sample=sample, temperature=temperature, seed=seed
    )
    picture = load_image(image)
    vlm = load_model(model, dtype, device, layers_path, trust_remote_code)
    stream_answer(vlm, prompt, picture, intervention, options)
