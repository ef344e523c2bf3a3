"""Load a VLM from a hub id, a local directory, or a bundled model (:data:`MODELS`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..base.errors import CmrmError, ConfigError, UnsupportedModelError
from .families import FamilySpec, family_for
from .layers import locate_decoder_layers, unwrap
from .placement import Placement
from .registry import MODELS
from .source import model_source
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
    device_map: str | dict[str, Any] | None = None,
    max_memory: str | dict[Any, Any] | None = None,
    offload_folder: str | Path | None = None,
) -> VLM:
    """Load a VLM and its processor from a hub id, a local directory, or a bundled model.

    Args:
        model: hub id (``llava-hf/llava-1.5-7b-hf``), local directory, or the name of a bundled
            model (:data:`cmrm.models.registry.MODELS`: ``organism``, ``organism-smol``).
        dtype: ``float32``/``bfloat16``/``float16`` or None for the checkpoint's own.
        device: ``cpu``, ``cuda``, ``cuda:1``, or ``auto`` (``device_map="auto"``).
        trust_remote_code: allow code from the hub repository (off unless asked).
        layers_path: explicit decoder-layer path override.
        device_map, max_memory, offload_folder: accelerate's big-model placement across GPUs,
            CPU and disk (see :mod:`cmrm.models.placement`); not with a ``device``.

    Raises:
        UnsupportedModelError: the family is not supported.
        CmrmError: the model cannot be found or loaded.
    """
    torch_dtype = parse_dtype(dtype)
    placement = Placement.parse(device, device_map, max_memory, offload_folder)
    source = model_source(model)  # no network: a typo or a missing folder fails here
    if source == "bundled":
        return load_bundled(
            model, dtype=torch_dtype, device=device, layers_path=layers_path, placement=placement
        )
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    where = "local directory" if source == "local" else "hub id"
    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise CmrmError(
            f"cannot load the config of {model!r} ({where}): {err}. Pass a hub id you can reach "
            "(check HF_HUB_OFFLINE and your token), a directory saved with save_pretrained, "
            f"or a bundled model ({', '.join(MODELS.names())})"
        ) from err
    family_for(str(config.model_type))  # fail early, before downloading weights
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    kwargs.update(placement.from_pretrained_kwargs())
    try:
        net: Any = AutoModelForImageTextToText.from_pretrained(model, **kwargs)
    except ValueError as err:
        if not placement.mapped:
            raise
        raise ConfigError(f"cannot place {model!r} with this device map: {err}") from err
    if placement.device is not None:
        net = net.to(placement.device)
    processor = AutoProcessor.from_pretrained(model, trust_remote_code=trust_remote_code)
    logger.info("loaded %s (%s)", model, config.model_type)
    return from_model(net, processor, model_id=model, layers_path=layers_path)


def load_bundled(
    name: str,
    path: str | Path | None = None,
    *,
    dtype: str | torch.dtype | None = None,
    device: str | None = None,
    layers_path: str | None = None,
    placement: Placement | None = None,
) -> VLM:
    """A bundled model (:data:`~cmrm.models.registry.MODELS`) as a :class:`VLM`.

    Args:
        name: the bundled model's name (``organism``).
        path: a directory of weights trained with its recipe (``cmrm organism train -o DIR``);
            None loads the shipped weights. The model id is then ``name:path``.
        placement: a device map (accelerate's dispatch after loading), else ``device``.

    Raises:
        UnknownNameError: ``name`` is not a bundled model (with a did-you-mean suggestion).
        DataError: the weights are missing.
    """
    placement = placement or Placement.parse(device, None, None, None)
    loader = MODELS.get(name)
    net, processor = loader(path, device=placement.device, dtype=parse_dtype(dtype))
    if placement.mapped:
        net = placement.dispatch(net)
    model_id = name if path is None else f"{name}:{path}"
    return from_model(net, processor, model_id=model_id, layers_path=layers_path)
