"""Core commands: inspect, calibrate, generate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from .app import app, cli_errors, load_data

if TYPE_CHECKING:
    from ..capture import ReadPosition
    from ..estimate import Contrast, Estimator
    from ..generate import Method
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
DeviceMapOpt = Annotated[
    str | None,
    typer.Option(
        "--device-map",
        help="Spread a model over GPUs/CPU/disk: auto, balanced, sequential, or a JSON map.",
    ),
]
MaxMemoryOpt = Annotated[
    str | None,
    typer.Option("--max-memory", help="Per device for --device-map, e.g. 0=20GiB,cpu=64GiB."),
]
OffloadOpt = Annotated[
    str | None,
    typer.Option("--offload-folder", help="Folder for weights --device-map puts on disk."),
]


def load_model(
    model: str,
    dtype: str | None,
    device: str | None,
    layers_path: str | None,
    trust_remote_code: bool = False,
    device_map: str | None = None,
    max_memory: str | None = None,
    offload_folder: str | None = None,
) -> VLM:
    from ..models import load_vlm

    return load_vlm(
        model,
        dtype=dtype,
        device=device,
        layers_path=layers_path,
        trust_remote_code=trust_remote_code,
        device_map=device_map,
        max_memory=max_memory,
        offload_folder=offload_folder,
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
    from ..inspect import describe

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
    layers: Annotated[str, typer.Option(help="all, 12, 10,12,14 or 8:16.")] = "all",
    read: Annotated[str, typer.Option(help="Read position: last or mean.")] = "last",
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
    from .. import distributed
    from ..estimate import calibrate as run_calibrate
    from ..images import NullImage

    if not anchors:
        raise typer.BadParameter("give the anchor set with --anchors FILE.jsonl or BENCH[:split]")
    items = load_data(anchors, root=root, limit=limit)
    world = distributed.start()
    vlm = load_model(
        model, dtype, device, layers_path, trust_remote_code, device_map, max_memory, offload_folder
    )
    shift = run_calibrate(
        vlm,
        items,
        null=NullImage.parse(null),
        estimator=cast("Estimator", estimator),
        layers=layers,
        contrast=cast("Contrast", contrast),
        read=cast("ReadPosition", read),
        batch_size=batch_size,
        show_progress=world.is_main,
        world=world,
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
    alpha: Annotated[float, typer.Option(help="Shift scale; 0 = no change.")] = 1.0,
    positions: Annotated[str, typer.Option(help="all, text or last.")] = "all",
    layers: Annotated[str, typer.Option(help="all, 12, 10,12,14 or 8:16.")] = "all",
    null: Annotated[str, typer.Option(help="Null image for --sample-level.")] = "blank",
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 128,
    sample: Annotated[bool, typer.Option("--sample", help="Sample instead of greedy.")] = False,
    temperature: float = 1.0,
    seed: int = 0,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
    device_map: DeviceMapOpt = None,
    max_memory: MaxMemoryOpt = None,
    offload_folder: OffloadOpt = None,
) -> None:
    """Generate an answer, optionally with CMRM; the answer is streamed to stdout."""
    from ..generate import GenerationOptions, Steering, stream_answer
    from ..images import NullImage, load_image
    from ..shift import ShiftVectors

    if shift is not None and sample_level:
        raise typer.BadParameter("use either --shift DIR (dataset-level) or --sample-level")
    method = "dataset" if shift is not None else "sample" if sample_level else "none"
    loaded = ShiftVectors.load(shift) if shift is not None else None
    steering = Steering(
        method=cast("Method", method),
        alpha=alpha,
        positions=positions,
        layers=layers,
        shift=loaded,
        null=NullImage.parse(null),
    )
    options = GenerationOptions(
        max_new_tokens=max_new_tokens, do_sample=sample, temperature=temperature, seed=seed
    )
    picture = load_image(image)
    vlm = load_model(
        model, dtype, device, layers_path, trust_remote_code, device_map, max_memory, offload_folder
    )
    stream_answer(vlm, prompt, picture, steering, options)
