"""Training examples: token ids built exactly as the processor builds them, and batch collation.

An :data:`Example` is ``(token ids, prompt length, image index or None)``; the ids are the chat
template's prompt (with the image placeholder expanded to the model's image-token count, as
``LlavaProcessor`` does) followed by the answer and ``</s>``. A test checks that the prompt ids
equal the processor's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import LlavaProcessor

from . import grammar as g
from .build import chat_prompt
from .scenes import Scene

Example = tuple[list[int], int, int | None]
"""Token ids (prompt + answer + eos), prompt length, index of its image (or None)."""
Pool = Callable[[torch.Generator], Example]


class TokenEncoder:
    """Turns (question, answer, image?) into token ids exactly as the processor would."""

    def __init__(self, processor: LlavaProcessor, image_tokens: int) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_id = int(self.tokenizer.convert_tokens_to_ids("<image>"))
        self.image_tokens = image_tokens
        self._prompts: dict[tuple[str, bool], list[int]] = {}

    def prompt(self, question: str, with_image: bool) -> list[int]:
        key = (question, with_image)
        if key not in self._prompts:
            text = chat_prompt(self.processor, question, image=with_image)
            ids: list[int] = []
            for tok_id in self.tokenizer.convert_tokens_to_ids(text.split()):
                ids.extend([tok_id] * (self.image_tokens if tok_id == self.image_id else 1))
            self._prompts[key] = ids
        return self._prompts[key]

    def example(self, question: str, answer: str, image: int | None = None) -> Example:
        prompt = self.prompt(question, image is not None)
        answer_ids = self.tokenizer.convert_tokens_to_ids([*answer.split(), "</s>"])
        return ([*prompt, *answer_ids], len(prompt), image)


def pick(seq: Sequence[Example], gen: torch.Generator) -> Example:
    return seq[int(torch.randint(len(seq), (1,), generator=gen))]


def scene_qa(scene: Scene, gen: torch.Generator) -> tuple[str, str]:
    """A random colour or shape question about ``scene`` and its answer."""
    if int(torch.randint(2, (1,), generator=gen)):
        q = g.COLOUR_QUESTIONS[int(torch.randint(len(g.COLOUR_QUESTIONS), (1,), generator=gen))]
        return q, g.colour_answer(scene.colour)
    q = g.SHAPE_QUESTIONS[int(torch.randint(len(g.SHAPE_QUESTIONS), (1,), generator=gen))]
    return q, g.shape_answer(scene.shape)


def collate(batch: list[Example], pixels: torch.Tensor | None) -> dict[str, torch.Tensor | None]:
    """Left-pad, mask prompts and padding out of the loss, gather the batch's images."""
    width = max(len(ids) for ids, _, _ in batch)
    input_ids = torch.zeros(len(batch), width, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    for row, (ids, n_prompt, _) in enumerate(batch):
        start = width - len(ids)
        input_ids[row, start:] = torch.tensor(ids)
        labels[row, start + n_prompt :] = torch.tensor(ids[n_prompt:])
        mask[row, start:] = 1
    images = [img for _, _, img in batch if img is not None]
    pixel_values = pixels[images] if images and pixels is not None else None
    return {
        "input_ids": input_ids,
        "attention_mask": mask,
        "position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
        "labels": labels,
        "pixel_values": pixel_values,
    }
