"""Helpers for the serving tests: the organism, a calibrated shift, image data URLs, a server."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
from PIL import Image

from cmrm.calibration.estimate import calibrate
from cmrm.calibration.shift import ShiftVectors
from cmrm.data import load_items
from cmrm.models import VLM, load_vlm
from cmrm.serve import ServerConfig
from cmrm.serve.app import create_app
from cmrm.serve.server import running_server


def organism_and_shift() -> tuple[VLM, ShiftVectors]:
    vlm = load_vlm("organism")
    return vlm, calibrate(vlm, load_items("organism:anchor", limit=16), gate=True)


def data_url(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def user(text: str, image: Image.Image | str | None = None) -> list[dict[str, Any]]:
    """One user message, the image first (as cmrm's own prompts)."""
    parts: list[dict[str, Any]] = []
    if image is not None:
        url = image if isinstance(image, str) else data_url(image)
        parts.append({"type": "image_url", "image_url": {"url": url}})
    parts.append({"type": "text", "text": text})
    return [{"role": "user", "content": parts}]


@contextmanager
def serving(vlm: VLM, config: ServerConfig) -> Iterator[tuple[openai.OpenAI, str, Any]]:
    """A real server on 127.0.0.1 (free port) and an official client (no retries)."""
    app = create_app(vlm, config)
    with running_server(app) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        try:
            yield client, base, app
        finally:
            client.close()


@contextmanager
def held_worker(vlm: VLM) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Make the next model call wait until released: ``(entered, release)``.

    Lets a test fill the queue or pass a timeout deterministically while the server is real.
    """
    entered, release = threading.Event(), threading.Event()

    def hold(module: Any, args: Any, kwargs: Any) -> None:
        entered.set()
        release.wait(timeout=30)

    handle = vlm.model.register_forward_pre_hook(hold, with_kwargs=True)
    try:
        yield entered, release
    finally:
        release.set()
        handle.remove()
