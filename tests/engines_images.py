"""Requests with an image to a real ``llama-server --mmproj``, and the rates they are judged at.

The prompt is the organism's chat prompt rendered by cmrm, with ``<image>`` replaced by the
server's media marker (``/props`` ``media_marker``; random per server unless
``LLAMA_MEDIA_MARKER`` is set) and the picture sent as PNG in ``multimodal_data`` of
``/completion``, so both engines see the same text around the same 49 image positions.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from cmrm.data.images import load_image
from cmrm.data.items import Item
from cmrm.judges.judgment import Judgment

from .engines import Server


def media_marker(server: Server) -> str:
    props = httpx.get(f"{server.base}/props", timeout=30).json()
    marker = props.get("media_marker")
    if not marker:
        raise RuntimeError(
            f"llama-server /props has no media_marker (was it started with --mmproj?): {props}"
        )
    return str(marker)


def png_b64(item: Item) -> str:
    image = load_image(item.image)
    if image is None:
        raise ValueError(f"item {item.id} has no image")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def image_completions(
    server: Server, prompts: Sequence[str], items: Sequence[Item], n: int
) -> list[tuple[str, int]]:
    """Greedy ``n``-token answers (text, prompt tokens evaluated) to ``prompts`` (cmrm's chat
    prompts, with ``<image>``) with each item's picture."""
    marker = media_marker(server)
    out = []
    for prompt, item in zip(prompts, items, strict=True):
        if prompt.count("<image>") != 1:
            raise ValueError(
                f"prompt of {item.id} has {prompt.count('<image>')} <image> slots, expected 1"
            )
        body = {
            "prompt": {"prompt_string": prompt.replace("<image>", marker),
                       "multimodal_data": [png_b64(item)]},
            "n_predict": n, "temperature": 0.0, "cache_prompt": False, "seed": 0,
        }  # fmt: skip
        reply = httpx.post(f"{server.base}/completion", json=body, timeout=600).json()
        if "content" not in reply:
            raise RuntimeError(f"llama-server refused the request for {item.id}: {reply}")
        out.append((str(reply["content"]), int(reply["tokens_evaluated"])))
    return out


@dataclass(frozen=True)
class Rate:
    """A share of items with a Wilson 95 % interval."""

    hits: int
    n: int

    @property
    def value(self) -> float:
        return self.hits / self.n if self.n else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        if not self.n:
            return (math.nan, math.nan)
        z, p, n = 1.959964, self.value, self.n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return (max(0.0, centre - half), min(1.0, centre + half))

    def contains(self, value: float) -> bool:
        low, high = self.interval
        return low - 1e-12 <= value <= high + 1e-12

    def text(self) -> str:
        low, high = self.interval
        return f"{100 * self.value:.1f} [{100 * low:.0f}-{100 * high:.0f}] (n {self.n})"


def rate(judgments: Sequence[Judgment], suite: str) -> Rate:
    """Refusal for request suites (harmful: refused; benign: over-refused), correctness for QA."""
    if suite.endswith("image-qa"):
        return Rate(sum(bool(j.correct) for j in judgments), len(judgments))
    return Rate(sum(bool(j.refused) for j in judgments), len(judgments))
