"""Load the shipped organism (or a trained directory) with ``from_pretrained``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from cmrm.base.errors import DataError

ORGANISM_DIR = Path(__file__).resolve().parent / "weights"
"""Where the shipped organism lives (``save_pretrained`` layout, safetensors)."""


def load_organism(
    path: str | Path | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Load the organism's model (eval mode) and processor (left padding).

    Args:
        path: a directory written by ``cmrm organism train``; default: the shipped weights.
        device: where to put the model (default: CPU).
        dtype: model dtype (default: float32, as trained).

    Raises:
        DataError: the directory or its weights are missing.

    Example:
        >>> model, processor = load_organism()
    """
    where = Path(path) if path is not None else ORGANISM_DIR
    if not (where / "config.json").is_file() or not (where / "model.safetensors").is_file():
        raise DataError(
            f"no organism weights in {where} (expected config.json and model.safetensors); "
            "train one with `cmrm organism train -o DIR` or reinstall cmrm to restore the "
            "shipped weights"
        )
    model = LlavaForConditionalGeneration.from_pretrained(where, dtype=dtype or torch.float32)
    if device is not None:
        model = model.to(device)  # type: ignore[arg-type]
    processor = LlavaProcessor.from_pretrained(where)
    processor.tokenizer.padding_side = "left"
    return model.eval(), processor


def save_organism(
    model: LlavaForConditionalGeneration,
    processor: LlavaProcessor,
    out: str | Path,
    *,
    recipe: Mapping[str, Any] | None = None,
) -> Path:
    """Write model (safetensors), processor and ``recipe.json`` (how it was trained) to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if recipe is not None:
        record = {
            **recipe,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }
        (out / "recipe.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out
