"""What ``cmrm inspect`` reports about a loaded model."""

from __future__ import annotations

from typing import Any

from PIL import Image

from .vlm import VLM


def image_token_count(vlm: VLM, size: tuple[int, int] = (336, 336)) -> int:
    """How many image tokens one image of ``size`` becomes in this model's prompt."""
    batch = vlm.encode(["describe"], [Image.new("RGB", size, "white")])
    return int(batch.image_mask.sum())


def describe(vlm: VLM) -> dict[str, Any]:
    """Family, decoder path, depth, width and image tokens of a model, JSON-ready."""
    text_config = vlm.model.config.get_text_config()
    return {
        "model": vlm.model_id,
        "family": vlm.family,
        "model_type": vlm.model_type,
        "architecture": type(vlm.model).__name__,
        "decoder_path": vlm.layers.path,
        "num_layers": vlm.num_layers,
        "hidden_size": vlm.hidden_size,
        "vocab_size": getattr(text_config, "vocab_size", None),
        "image_token_ids": sorted(vlm.image_token_ids),
        "image_tokens_per_image": image_token_count(vlm),
        "dtype": str(vlm.dtype).removeprefix("torch."),
        "device": str(vlm.device),
        "parameters": sum(p.numel() for p in vlm.model.parameters()),
    }
