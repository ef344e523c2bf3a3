"""``cmrm serve``: an OpenAI-compatible server with CMRM applied."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from ..base.errors import CmrmError
from .app import app, cli_errors
from .options import (
    AlphaOpt,
    DeviceOpt,
    DtypeOpt,
    InterventionFlags,
    LayersPathOpt,
    ModelArg,
    ModelChoice,
    NullOpt,
    OperatorOpt,
    PositionsOpt,
    RemoteOpt,
    SampleLevelOpt,
    ShiftDirOpt,
    load_model,
)

logger = logging.getLogger(__name__)


@app.command()
@cli_errors
def serve(
    model: ModelArg = "organism",
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
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    served_model_name: Annotated[
        str | None, typer.Option(help="The `model` name clients send (default: MODEL).")
    ] = None,
    allow_override: Annotated[
        bool,
        typer.Option(
            "--allow-override",
            help="Let requests choose method/alpha/operator via extra_body={'cmrm': {...}}.",
        ),
    ] = False,
    max_alpha: Annotated[float, typer.Option(help="Largest |alpha| a request may ask for.")] = 4.0,
    allow_local_images: Annotated[
        Path | None, typer.Option(help="Read image paths inside this folder (off by default).")
    ] = None,
    allow_remote_images: Annotated[
        bool, typer.Option("--allow-remote-images", help="Fetch http(s) image URLs.")
    ] = False,
    max_body_bytes: Annotated[int, typer.Option(min=1)] = 20 * 1024 * 1024,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Largest max_tokens.")] = 512,
    max_queue: Annotated[int, typer.Option(min=1, help="Waiting requests before 429.")] = 64,
    max_batch: Annotated[int, typer.Option(min=1, help="Requests per batch.")] = 8,
    batch_wait_ms: Annotated[
        float, typer.Option(min=0, help="Start a batch after this long without new requests.")
    ] = 20.0,
    batch_wait_max_ms: Annotated[
        float, typer.Option(min=0, help="... or at the latest after this long.")
    ] = 250.0,
    request_timeout: Annotated[float, typer.Option(min=0.001, help="Seconds; then 504.")] = 300.0,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    layers_path: LayersPathOpt = None,
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Serve MODEL behind an OpenAI-compatible API (/v1/chat/completions, /v1/models, /health)."""
    from ..data.images import NullImage
    from ..serve import ImagePolicy, Limits, OverridePolicy, ServedIntervention, ServerConfig

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise CmrmError(
            f"cmrm serve needs FastAPI and uvicorn ({err}); install them with "
            "pip install 'cmrm[serve]'"
        ) from err
    from ..serve.server import check_port

    check_port(host, port)  # before the model loads: a busy port is one line, at once
    choice = ModelChoice(model, dtype, device, layers_path, trust_remote_code).check()
    flags = InterventionFlags(shift, sample_level, alpha, operator, positions, layers, null)
    loaded, iv = flags.build()
    limits = Limits(
        max_body_bytes=max_body_bytes,
        max_new_tokens=max_new_tokens,
        max_queue=max_queue,
        max_batch=max_batch,
        batch_wait_s=batch_wait_ms / 1000,
        batch_wait_max_s=max(batch_wait_max_ms, batch_wait_ms) / 1000,
        request_timeout_s=request_timeout,
    )
    images = ImagePolicy(local_root=allow_local_images, remote=allow_remote_images)
    if allow_local_images is not None and not allow_local_images.is_dir():
        raise typer.BadParameter(f"--allow-local-images {allow_local_images} is not a folder")
    vlm = load_model(choice)
    if loaded is not None:
        loaded.check_compatible(vlm.model_type, vlm.hidden_size, vlm.num_layers)
    steered_layers = None if iv is None or iv.layers in (None, "all") else iv.layers
    if steered_layers is not None:
        steered_layers = vlm.layers.resolve(steered_layers)
    served = ServedIntervention(
        method="none" if iv is None else iv.source,
        alpha=1.0 if iv is None else iv.alpha,
        operator="add" if iv is None else iv.operator,
        positions="all" if iv is None else iv.positions,
        layers=steered_layers,
        shift=loaded,
        null=NullImage() if iv is None else iv.null,
    )
    config = ServerConfig(
        model_name=served_model_name or model,
        intervention=served,
        policy=OverridePolicy(allow=allow_override, max_alpha=max_alpha),
        images=images,
        limits=limits,
    )
    from ..serve.app import create_app
    from ..serve.server import serve_forever

    if host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("listening on %s: anyone who can reach it can use the model", host)
    typer.echo(
        f"serving {model} as {config.model_name!r} on http://{host}:{port}/v1 "
        f"({'no intervention' if iv is None else iv.label})",
        err=True,
    )
    serve_forever(create_app(vlm, config), host, port)
