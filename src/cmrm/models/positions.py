"""Which token positions CMRM shifts, in absolute positions that survive the KV cache.

During cached generation a decoder layer sees the whole prompt once (prefill) and then one token per
call. Positions *within a call* are therefore meaningless after the prefill; a policy must know
where the call starts in the sequence. :class:`PromptLayout` is built from the prompt once and
answers, for any call ``[start, start + length)``, which rows and positions to shift:

- ``all``: every (non-padding) prompt position and every generated token;
- ``text``: prompt positions that are not image tokens, and every generated token;
- ``last``: the last prompt position and every generated token.

``steer(..., generated=False)`` keeps the prompt part of a policy and leaves generated tokens
alone; it is a diagnostic (where does an intervention act?), not the paper's method.

Rows without an image are never shifted. With beam search or several return sequences, the batch
grows by an integer factor (``repeat_interleave`` order) and the layout follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..base.errors import CmrmError
from .names import POSITIONS, Positions


def check_positions(positions: str) -> Positions:
    if positions not in POSITIONS:
        raise CmrmError(f"positions must be one of {', '.join(POSITIONS)}, got {positions!r}")
    return positions  # type: ignore[return-value]


@dataclass(frozen=True)
class PromptLayout:
    """The prompt of the batch being processed: padding, image positions, rows with images."""

    input_ids: Tensor
    attention_mask: Tensor
    image_mask: Tensor
    has_image: Tensor
    any_image: bool = True
    """Whether any row has an image (read once, in the prefill: no host sync per step)."""
    all_images: bool = True
    """Whether every row has an image."""

    @classmethod
    def from_inputs(
        cls, input_ids: Tensor, attention_mask: Tensor | None, image_ids: Tensor
    ) -> PromptLayout:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        image_mask = torch.isin(input_ids, image_ids.to(input_ids.device))
        has_image = image_mask.any(dim=1)
        return cls(
            input_ids=input_ids,
            attention_mask=attention_mask.bool(),
            image_mask=image_mask,
            has_image=has_image,
            any_image=bool(has_image.any()),
            all_images=bool(has_image.all()),
        )

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    def continues(self, input_ids: Tensor) -> bool:
        """True if ``input_ids`` is this prompt plus generated tokens (generation without cache)."""
        return (
            input_ids.shape[0] == self.batch_size
            and input_ids.shape[1] > self.length
            and bool(torch.equal(input_ids[:, : self.length], self.input_ids.to(input_ids.device)))
        )

    def prompt_mask(self, positions: Positions) -> Tensor:
        """``[B, T]`` bool: prompt positions to shift."""
        if positions == "all":
            mask = self.attention_mask
        elif positions == "text":
            mask = self.attention_mask & ~self.image_mask
        else:
            mask = torch.zeros_like(self.attention_mask)
            mask[:, -1] = True
        return mask & self.has_image[:, None]

    def mask(
        self, positions: Positions, start: int, length: int, batch: int, generated: bool = True
    ) -> Tensor:
        """``[batch, length]`` bool for the call covering absolute positions ``[start, start+length)``.

        ``generated=False`` leaves generated tokens alone (a diagnostic variant: the design's
        policies all shift them)."""
        end = start + length
        parts = []
        if start < self.length:
            parts.append(self.prompt_mask(positions)[:, start : min(end, self.length)])
        if end > self.length:
            rows = self.has_image if generated else torch.zeros_like(self.has_image)
            parts.append(rows[:, None].expand(-1, end - max(start, self.length)))
        mask = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return expand_rows(mask, batch, "prompt layout")


def expand_rows(tensor: Tensor, batch: int, what: str) -> Tensor:
    """Repeat rows to ``batch`` (beam search / num_return_sequences expand by an integer factor)."""
    rows = int(tensor.shape[0])
    if rows == batch:
        return tensor
    if rows and batch % rows == 0:
        return tensor.repeat_interleave(batch // rows, dim=0)
    raise CmrmError(
        f"the model was called with batch size {batch} but the {what} has {rows} rows; "
        "steer one batch at a time (the batch may only grow by an integer factor, as in beam search)"
    )
