"""Batched generation (left padding, greedy or sampling), with or without an intervention.

``generate_items(vlm, items, intervention)`` takes an
:class:`~cmrm.interventions.value.Intervention` (dataset- or sample-level vectors, any operator)
or ``None`` for the model as it is. Baselines that change the input instead (text-only,
AdaShield, ECSO) are in :mod:`cmrm.generation.baselines`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..base.errors import CmrmError
from ..data.images import load_image
from ..data.items import Item
from ..interventions.apply import intervene
from ..interventions.value import Intervention
from ..models.vlm import VLM
from .batching import length_key, length_order


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


def generate_batch(
    vlm: VLM,
    prompts: Sequence[str],
    images: Sequence[Image.Image | None],
    intervention: Intervention | None = None,
    options: GenerationOptions | None = None,
    streamer: Any = None,
) -> list[str]:
    """Generate one answer per prompt for one batch (a single ``model.generate`` call)."""
    options = options or GenerationOptions()
    batch = vlm.encode(prompts, images)
    tokenizer = vlm.tokenizer
    kwargs = options.generate_kwargs()
    if tokenizer.pad_token_id is not None:
        kwargs["pad_token_id"] = tokenizer.pad_token_id
    if options.do_sample:
        torch.manual_seed(options.seed)
    with intervene(vlm, intervention, prompts, images), torch.inference_mode():
        out = vlm.model.generate(**batch.inputs, **kwargs, streamer=streamer)
    new_tokens = out[:, batch.input_ids.shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def _chunks(vlm: VLM, items: Sequence[Item], batch_size: int) -> Iterator[list[int]]:
    """Row indices of each batch, rows sorted by prompt length (see :mod:`cmrm.generation.batching`),
    each batch split into the processor calls its family allows (:meth:`VLM.image_groups`)."""
    order = length_order(items, length_key(vlm))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        for group in vlm.image_groups([items[i].has_image for i in rows]):
            yield [rows[j] for j in group]


def generate_items(
    vlm: VLM,
    items: Sequence[Item],
    intervention: Intervention | None = None,
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
            prompts = [item.prompt for item in chunk]
            texts = generate_batch(vlm, prompts, images, intervention, options)
            for i, text in zip(rows, texts, strict=True):
                answers[i] = text
            bar.update(len(rows))
    return answers


def stream_answer(
    vlm: VLM,
    prompt: str,
    image: Image.Image | None,
    intervention: Intervention | None = None,
    options: GenerationOptions | None = None,
) -> str:
    """Generate one answer, printing tokens to stdout as they come; returns the whole answer."""
    from transformers import TextStreamer

    streamer = TextStreamer(vlm.tokenizer, skip_prompt=True, skip_special_tokens=True)
    return generate_batch(vlm, [prompt], [image], intervention, options, streamer=streamer)[0]
