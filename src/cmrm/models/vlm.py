"""The VLM handle: a model, its processor, its family spec and its decoder layers.

:meth:`VLM.encode` is the one way prompts become model inputs. It renders each prompt through the
family's chat template — with an image placeholder for rows that have an image, without one for
text-only rows, so that the *text* variant differs from the *image* variants only by the image —
tokenises with left padding, and marks the image-token positions of every row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from ..base.errors import CmrmError
from .families import FamilySpec
from .layers import DecoderLayers
from .placement import execution_device

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """Model inputs for a batch plus where its images are."""

    inputs: dict[str, Tensor]
    image_mask: Tensor
    """``[B, T]`` bool: True at image-token positions."""
    has_image: Tensor
    """``[B]`` bool: the row has an image."""

    @property
    def input_ids(self) -> Tensor:
        return self.inputs["input_ids"]

    @property
    def attention_mask(self) -> Tensor:
        return self.inputs["attention_mask"]

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass(frozen=True)
class VLM:
    """A loaded vision-language model ready for capture, steering and generation."""

    model: Any
    processor: Any
    spec: FamilySpec
    layers: DecoderLayers
    model_id: str
    image_token_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def family(self) -> str:
        return self.spec.name

    @property
    def model_type(self) -> str:
        return str(self.model.config.model_type)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return self.layers.hidden_size

    @property
    def device(self) -> torch.device:
        """Where inputs go (never ``meta``, even when weights are offloaded)."""
        return execution_device(self.model)

    @property
    def dtype(self) -> torch.dtype:
        first: torch.nn.Parameter = next(self.model.parameters())
        return first.dtype

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def image_mean(self) -> tuple[float, ...] | None:
        image_processor = getattr(self.processor, "image_processor", None)
        mean = getattr(image_processor, "image_mean", None)
        return tuple(float(m) for m in mean) if mean is not None else None

    def render(self, prompt: str, with_image: bool) -> str:
        """The prompt text as the model sees it (chat template applied, generation prompt added)."""
        if self.spec.chat_template and getattr(self.processor, "chat_template", None):
            content: list[dict[str, str]] = [{"type": "image"}] if with_image else []
            content.append({"type": "text", "text": prompt})
            messages = [{"role": "user", "content": content}]
            return str(
                self.processor.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=False
                )
            )
        if self.spec.chat_template:
            logger.warning("processor of %s has no chat template; prompting raw", self.model_id)
        token = getattr(self.processor, "image_token", None) or "<image>"
        return f"{token}{prompt}\n" if with_image and self.spec.name != "paligemma" else prompt

    def image_groups(self, has_image: Sequence[bool]) -> list[list[int]]:
        """Row indices grouped into processor calls: one group when the family mixes rows with
        and without an image (or all rows are alike), else the image rows, then the others."""
        rows = list(range(len(has_image)))
        if self.spec.mixed_batches or all(has_image) or not any(has_image):
            return [rows]
        return [[i for i in rows if has_image[i]], [i for i in rows if not has_image[i]]]

    def encode(self, prompts: Sequence[str], images: Sequence[Image.Image | None]) -> Batch:
        """Tokenise a batch (left padded) and locate image tokens.

        Raises:
            CmrmError: lengths differ, or the family cannot mix image and text-only rows.
        """
        if len(prompts) != len(images):
            raise CmrmError(f"got {len(prompts)} prompts but {len(images)} images; pass one each")
        if not prompts:
            raise CmrmError("cannot encode an empty batch")
        present = [img for img in images if img is not None]
        if present and len(present) != len(images) and not self.spec.mixed_batches:
            raise CmrmError(
                f"{self.family} cannot batch rows with and without an image together; "
                "split the batch by whether rows have an image"
            )
        texts = [self.render(p, img is not None) for p, img in zip(prompts, images, strict=True)]
        self.tokenizer.padding_side = "left"
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if present:
            kwargs["images"] = (
                [[img] if img is not None else [] for img in images]
                if self.spec.nested_images
                else present
            )
        if not present and self.spec.text_rows_by_tokenizer:
            encoded = self._tokenize_text_rows(texts)
        else:
            encoded = self.processor(**kwargs)
        inputs = {
            k: v.to(self.device)
            for k, v in encoded.items()
            if isinstance(v, Tensor) and k != "labels"  # PaliGemma's processor adds labels
        }
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        image_mask = self.image_positions(inputs["input_ids"])
        has_image = torch.tensor([img is not None for img in images], device=self.device)
        return Batch(inputs=inputs, image_mask=image_mask, has_image=has_image)

    def _tokenize_text_rows(self, texts: Sequence[str]) -> Any:
        """Text-only rows of a family whose processor needs images (PaliGemma): the layout the
        processor gives an image row, ``<image>... bos prompt \\n``, without the image tokens."""
        tok = self.tokenizer
        return tok(
            [f"{tok.bos_token}{text}\n" for text in texts],
            padding=True,
            return_tensors="pt",
            return_token_type_ids=True,
        )

    def image_positions(self, input_ids: Tensor) -> Tensor:
        """``[B, T]`` bool mask of image-token positions."""
        ids = torch.tensor(sorted(self.image_token_ids), device=input_ids.device)
        return torch.isin(input_ids, ids)
