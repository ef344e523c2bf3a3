"""Batched generation (left padding, greedy or sampling) with or without CMRM.

Methods:
- ``none``: the model as it is;
- ``dataset``: a calibrated :class:`~cmrm.shift.ShiftVectors` added at every step;
- ``sample``: per-input vectors from two extra prefill passes (text and null variants, batched);
- ``text-only``: the image is dropped — the oracle upper bound on safety, not a defence.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
from PIL import Image
from tqdm.auto import tqdm

from .batching import length_key, length_order
from .errors import CmrmError
from .estimate import CONTRASTS, Contrast, sample_shifts
from .images import NullImage, load_image
from .items import Item
from .models.vlm import VLM
from .positions import check_positions
from .shift import ShiftVectors
from .steering import steer

Method = Literal["none", "dataset", "sample", "text-only"]
METHODS: tuple[str, ...] = get_args(Method)


@dataclass(frozen=True)
class Steering:
    """Which intervention to apply while generating."""

    method: Method = "none"
    alpha: float = 1.0
    positions: str = "all"
    layers: str | tuple[int, ...] | None = None
    shift: ShiftVectors | None = field(default=None, repr=False)
    null: NullImage = field(default_factory=NullImage)
    contrast: Contrast = "null"
    generated: bool = True
    """Also shift generated tokens (the published method); False: prompt positions only."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CmrmError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not isinstance(self.alpha, int | float) or not math.isfinite(self.alpha):
            raise CmrmError(f"alpha must be a finite number, got {self.alpha!r}")
        check_positions(self.positions)
        if self.contrast not in CONTRASTS:
            raise CmrmError(f"contrast must be one of {CONTRASTS}, got {self.contrast!r}")
        if self.method == "dataset" and self.shift is None:
            raise CmrmError("method 'dataset' needs a calibrated shift (--shift DIR)")

    def describe(self) -> dict[str, Any]:
        """A JSON-safe record of the intervention (for run configs and rows)."""
        out: dict[str, Any] = {"method": self.method}
        if self.method in ("dataset", "sample"):
            out.update(alpha=self.alpha, positions=self.positions, layers=self.layers)
            if not self.generated:
                out["generated"] = False
        if self.method == "sample":
            out.update(null=self.null.spec, contrast=self.contrast)
        if self.shift is not None and self.method == "dataset":
            out["shift"] = {
                "source_model": self.shift.meta.source_model,
                "estimator": self.shift.meta.estimator,
                "anchor_hash": self.shift.meta.anchor_hash,
            }
        return out


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise CmrmError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.do_sample and not self.temperature > 0:
            raise CmrmError(f"temperature must be positive when sampling, got {self.temperature}")

    def generate_kwargs(self) -> dict[str, Any]:
        if not self.do_sample:
            return {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        return {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": True,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }


def _intervention(
    vlm: VLM, prompts: Sequence[str], images: Sequence[Image.Image | None], steering: Steering
) -> contextlib.AbstractContextManager[Any]:
    if steering.method == "dataset":
        assert steering.shift is not None
        return steer(
            vlm,
            steering.shift,
            alpha=steering.alpha,
            layers=steering.layers or "all",
            positions=steering.positions,
            generated=steering.generated,
        )
    if steering.method == "sample":
        shift = sample_shifts(
            vlm,
            prompts,
            images,
            null=steering.null,
            contrast=steering.contrast,
            layers=steering.layers,
        )
        return steer(
            vlm,
            shift,
            alpha=steering.alpha,
            positions=steering.positions,
            generated=steering.generated,
        )
    return contextlib.nullcontext()


def generate_batch(
    vlm: VLM,
    prompts: Sequence[str],
    images: Sequence[Image.Image | None],
    steering: Steering | None = None,
    options: GenerationOptions | None = None,
    streamer: Any = None,
) -> list[str]:
    """Generate one answer per prompt for one batch (a single ``model.generate`` call)."""
    steering = steering or Steering()
    options = options or GenerationOptions()
    if steering.method == "text-only":
        images = [None] * len(prompts)
    batch = vlm.encode(prompts, images)
    tokenizer = vlm.tokenizer
    kwargs = options.generate_kwargs()
    if tokenizer.pad_token_id is not None:
        kwargs["pad_token_id"] = tokenizer.pad_token_id
    if options.do_sample:
        torch.manual_seed(options.seed)
    with _intervention(vlm, prompts, images, steering), torch.inference_mode():
        out = vlm.model.generate(**batch.inputs, **kwargs, streamer=streamer)
    new_tokens = out[:, batch.input_ids.shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def _chunks(vlm: VLM, items: Sequence[Item], batch_size: int) -> Iterator[list[int]]:
    """Row indices of each batch, rows sorted by prompt length (see :mod:`cmrm.batching`)."""
    order = length_order(items, length_key(vlm))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        if vlm.spec.mixed_batches:
            yield rows
            continue
        for flag in (True, False):
            group = [i for i in rows if items[i].has_image == flag]
            if group:
                yield group


def generate_items(
    vlm: VLM,
    items: Sequence[Item],
    steering: Steering | None = None,
    options: GenerationOptions | None = None,
    *,
    batch_size: int = 8,
    show_progress: bool = False,
) -> list[str]:
    """Generate for every item in batches; answers come back in the items' order.

    Raises:
        DataError: an image is missing or undecodable (the message names the file).
    """
    if batch_size < 1:
        raise CmrmError(f"batch size must be at least 1, got {batch_size}")
    answers: list[str] = [""] * len(items)
    bar = tqdm(total=len(items), desc="generating", disable=not show_progress, unit="item")
    with bar:
        for rows in _chunks(vlm, items, batch_size):
            chunk = [items[i] for i in rows]
            images = [load_image(item.image) for item in chunk]
            texts = generate_batch(vlm, [item.prompt for item in chunk], images, steering, options)
            for i, text in zip(rows, texts, strict=True):
                answers[i] = text
            bar.update(len(rows))
    return answers


def stream_answer(
    vlm: VLM,
    prompt: str,
    image: Image.Image | None,
    steering: Steering | None = None,
    options: GenerationOptions | None = None,
) -> str:
    """Generate one answer, printing tokens to stdout as they come; returns the whole answer."""
    from transformers import TextStreamer

    streamer = TextStreamer(vlm.tokenizer, skip_prompt=True, skip_special_tokens=True)
    return generate_batch(vlm, [prompt], [image], steering, options, streamer=streamer)[0]
