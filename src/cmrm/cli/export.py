"""``cmrm export`` (llama.cpp control vectors, baked-bias checkpoints) and ``cmrm check-endpoint``."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from ..base.errors import CmrmError
from .app import app, cli_errors
from .choices import POSITIONS_LISTED, one_of
from .options import (
    DeviceOpt,
    DtypeOpt,
    LayersPathOpt,
    ModelArg,
    ModelChoice,
    RemoteOpt,
    load_model,
)

FORMATS = ("gguf-control-vector", "hf-bias")
"""What ``cmrm export --format`` accepts (and its ``--help`` lists)."""
MODES = ("auto", "logprobs", "completions")
"""What ``cmrm check-endpoint --mode`` accepts."""
EXPECTED = ("steered", "unsteered")
"""What ``cmrm check-endpoint --expect`` accepts."""
ShiftOpt = Annotated[Path, typer.Option("--shift", help="Shift directory from `cmrm calibrate`.")]
AlphaOpt = Annotated[
    float | None,
    typer.Option(
        help="Shift scale baked into the output (default: tune's recommendation, else 1)."
    ),
]


def _model_config(model: str, trust_remote_code: bool) -> Any:
    """The model's config without loading its weights (bundled models are small enough to load)."""
    from ..models.registry import MODELS

    if model in MODELS:
        from ..models import load_vlm

        return load_vlm(model).model.config
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise CmrmError(
            f"cannot load the config of {model!r}: {err}. Pass a hub id you can reach, a "
            "directory saved with save_pretrained, or 'organism'"
        ) from err


@app.command()
@cli_errors
def export(
    model: ModelArg = "organism",
    shift: ShiftOpt = Path("shift"),
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help=f"{one_of(FORMATS)} (gguf-control-vector: llama.cpp; hf-bias: a checkpoint).",
        ),
    ] = "",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="FILE.gguf or a new folder.")
    ] = None,
    alpha: AlphaOpt = None,
    drop_layer0: Annotated[
        bool,
        typer.Option("--drop-layer0", help="Leave out layer 0, which llama.cpp cannot express."),
    ] = False,
    model_hint: Annotated[
        str | None, typer.Option(help="controlvector.model_hint (default: the decoder's type).")
    ] = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Export a dataset-level shift for another engine: a llama.cpp control vector or a
    checkpoint with the shift baked in as down_proj biases."""
    from ..calibration.shift import ShiftVectors
    from ..export.bias import check_bias_export, export_hf_bias
    from ..export.control_vector import llama_cpp_commands, write_control_vector
    from ..export.setting import baked_setting
    from ..models.families import family_for

    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if output is None:
        raise typer.BadParameter("give the output with -o FILE.gguf or -o FOLDER")
    if alpha is not None and not math.isfinite(alpha):
        raise typer.BadParameter(f"--alpha must be a finite number, got {alpha}")
    if fmt == "hf-bias" and output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise CmrmError(f"{output} exists and is not empty; choose a new -o folder or remove it")
    if fmt == "gguf-control-vector" and output.is_dir():
        raise CmrmError(f"{output} is a folder; -o takes the .gguf file to write")
    baked = baked_setting(ShiftVectors.load(shift), alpha)
    loaded, alpha = baked.shift, baked.alpha
    typer.echo(f"exporting {baked.note}", err=True)
    config = _model_config(model, trust_remote_code)
    text = config.get_text_config()
    family = family_for(str(config.model_type)).name
    if fmt == "gguf-control-vector":
        loaded.check_compatible(str(config.model_type), text.hidden_size, text.num_hidden_layers)
        written = write_control_vector(
            loaded,
            output,
            alpha=alpha,
            model_hint=model_hint or str(text.model_type),
            drop_layer0=drop_layer0,
        )
        first, last = written.layers[0], written.layers[-1]
        typer.echo(
            f"wrote {output}: {len(written.layers)} direction tensors (layers {first}-{last}), "
            f"alpha {alpha:g}, model_hint {written.model_hint}"
        )
        typer.echo("run it with llama.cpp (convert the model and its projector to GGUF first):")
        for line in llama_cpp_commands(output):
            typer.echo(f"  {line}")
        typer.echo(
            "note: llama.cpp adds the vector at every position of every request, text-only "
            "requests included; --control-vector-scaled FILE:S multiplies the baked alpha by S"
        )
        return
    check_bias_export(family, str(text.model_type), model)  # before loading any weights
    vlm = load_model(ModelChoice(model, dtype, device, layers_path, trust_remote_code).check())
    export_hf_bias(vlm, loaded, output, alpha=alpha)
    typer.echo(
        f"wrote {output}: {model} with alpha {alpha:g} x the shift baked into "
        f"{len(loaded.layers)} layers as mlp.down_proj biases (mlp_bias=True)"
    )
    typer.echo("load it without cmrm, e.g.:")
    typer.echo(f"  AutoModelForImageTextToText.from_pretrained({str(output)!r})")
    typer.echo(f"  vllm serve {output}")
    typer.echo(
        "note: the shift now applies at every position of every request, text-only requests "
        "included"
    )


@app.command("check-endpoint")
@cli_errors
def check_endpoint(
    url: Annotated[str, typer.Argument(help="Base URL of an OpenAI-compatible server.")],
    model_name: Annotated[
        str, typer.Option("--model", help="The model name to send (what the endpoint serves).")
    ] = "",
    shift: ShiftOpt = Path("shift"),
    alpha: AlphaOpt = None,
    local: Annotated[
        str | None,
        typer.Option(help="Local copy of the served model (default: the shift's source model)."),
    ] = None,
    positions: Annotated[
        str, typer.Option(help=f"Positions of the local steered model: {POSITIONS_LISTED}.")
    ] = "all",
    mode: Annotated[str, typer.Option(help=f"{one_of(MODES)}.")] = "auto",
    expect: Annotated[
        str, typer.Option(help=f"{one_of(EXPECTED)} (sets the exit code).")
    ] = "steered",
    max_tokens: Annotated[int, typer.Option(min=1, max=64)] = 8,
    api_key: Annotated[
        str | None, typer.Option(envvar="OPENAI_API_KEY", help="Bearer token, if needed.")
    ] = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Say whether URL's model behaves like the steered or the unsteered model (probes with an
    image, compared locally). Exit 0: as expected; 3: the other one; 4: inconclusive."""
    from ..calibration.shift import ShiftVectors
    from ..export.endpoint import Endpoint
    from ..export.endpoint import check_endpoint as run_check
    from ..export.setting import baked_setting
    from ..models.positions import check_positions

    if not model_name:
        raise typer.BadParameter("give the served model's name with --model NAME")
    if mode not in MODES:
        raise typer.BadParameter(f"--mode must be {one_of(MODES)}, got {mode!r}")
    if expect not in EXPECTED:
        raise typer.BadParameter(f"--expect must be {one_of(EXPECTED)}, got {expect!r}")
    check_positions(positions)
    baked = baked_setting(ShiftVectors.load(shift), alpha)
    loaded, alpha = baked.shift, baked.alpha
    choice = ModelChoice(local or loaded.meta.source_model, dtype, device, layers_path)
    vlm = load_model(replace(choice, trust_remote_code=trust_remote_code).check())
    report = run_check(
        Endpoint(url, model_name, api_key),
        vlm,
        loaded,
        alpha=alpha,
        positions=positions,
        mode=cast(Any, mode),
        max_tokens=max_tokens,
    )
    typer.echo(json.dumps(report.to_dict(), indent=2))
    typer.echo(f"{report.verdict}: {report.reason}", err=True)
    if report.verdict == "inconclusive":
        raise typer.Exit(code=4)
    if report.verdict != expect:
        raise typer.Exit(code=3)
