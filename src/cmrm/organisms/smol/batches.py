"""Training examples as token ids (built exactly as the processor builds them) and collation.

An :class:`Example` holds the prompt ids (chat template, image placeholder expanded to the
tower's image-token count, as ``LlavaProcessor`` does), the answer ids, and the index of its image
in the stage's pixel pool (or None). A test checks that the prompt ids equal the processor's.

Loss is computed on answer tokens only. Rows are left-padded, so every answer sits at the end of
its row; :func:`answer_loss` therefore asks the model for the logits of the last positions only
(``logits_to_keep``), which skips most of the 49k-way output layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import LlavaProcessor

from .build import IMAGE_TOKEN, chat_prompt


@dataclass(frozen=True)
class Example:
    """Prompt ids, answer ids (ending in EOS unless truncated), image index or None."""

    prompt: tuple[int, ...]
    answer: tuple[int, ...]
    image: int | None = None


class TokenEncoder:
    """Turns (question, answer, image?) into an :class:`Example` as the processor would."""

    def __init__(self, processor: LlavaProcessor, image_tokens: int) -> None:
        self.tokenizer = processor.tokenizer
        self.processor = processor
        self.image_tokens = image_tokens
        self.eos = int(self.tokenizer.eos_token_id)
        self._prompts: dict[tuple[str, bool], tuple[int, ...]] = {}

    def prompt(self, question: str, with_image: bool) -> tuple[int, ...]:
        key = (question, with_image)
        if key not in self._prompts:
            text = chat_prompt(self.processor, question, image=with_image)
            text = text.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.image_tokens)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            self._prompts[key] = tuple(int(i) for i in ids)
        return self._prompts[key]

    def answer_ids(self, answer: str) -> tuple[int, ...]:
        ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
        return (*(int(i) for i in ids), self.eos)

    def example(self, question: str, answer: str, image: int | None = None) -> Example:
        return Example(self.prompt(question, image is not None), self.answer_ids(answer), image)


def to_pixels(
    images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """CLIP normalisation of 224x224 uint8 RGB arrays, ``[N, 3, 224, 224]``; equals the
    processor's output exactly for images already at the tower's size (a test checks it)."""
    pixels = torch.from_numpy(np.stack(images)).to(torch.float32)
    pixels.div_(255.0).sub_(torch.tensor(mean, dtype=torch.float32))
    pixels.div_(torch.tensor(std, dtype=torch.float32))
    return pixels.permute(0, 3, 1, 2)


def collate(
    batch: Sequence[Example],
    pad_id: int,
    images: np.ndarray | None,
    norm: tuple[list[float], list[float]],
) -> tuple[dict[str, torch.Tensor | None], torch.Tensor, int]:
    """Left-padded inputs, the answer-token targets of the last ``keep`` positions, and ``keep``.

    Returns ``(inputs, targets, keep)``: ``inputs`` for the model's forward (with
    ``position_ids`` counted from each row's first real token, as generation does), ``targets``
    ``[B, keep - 1]`` with -100 outside answers, to be compared with the logits of the last
    ``keep`` positions shifted by one.
    """
    seqs = [ex.prompt + ex.answer for ex in batch]
    width = max(len(s) for s in seqs)
    keep = max(len(ex.answer) for ex in batch) + 1
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (ex, seq) in enumerate(zip(batch, seqs, strict=True)):
        start = width - len(seq)
        input_ids[row, start:] = torch.tensor(seq)
        mask[row, start:] = 1
        labels[row, width - len(ex.answer) :] = torch.tensor(ex.answer)
    picked = [ex.image for ex in batch if ex.image is not None]
    pixel_values = None
    if picked:
        if images is None:
            raise ValueError("a batch has image examples but no image pool was given")
        pixel_values = to_pixels([images[i] for i in picked], *norm)
    inputs: dict[str, torch.Tensor | None] = {
        "input_ids": input_ids,
        "attention_mask": mask,
        "position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
        "pixel_values": pixel_values,
    }
    return inputs, labels[:, width - keep + 1 :], keep


def answer_loss(
    model: nn.Module, inputs: dict[str, torch.Tensor | None], targets: torch.Tensor, keep: int
) -> torch.Tensor:
    """Mean cross-entropy over answer tokens, computing logits for the last ``keep`` positions."""
    kwargs = {k: v for k, v in inputs.items() if v is not None}
    logits = model(**kwargs, logits_to_keep=keep).logits[:, :-1]
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100
    )
