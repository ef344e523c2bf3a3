"""A dataset-level shift baked into a checkpoint as ``mlp.down_proj`` biases.

For a Llama text decoder, ``down_proj``'s output goes straight into the residual add, so with
``mlp_bias=True``, zero ``gate_proj``/``up_proj`` biases and ``down_proj.bias = alpha * v_l`` the
layer's output becomes ``h_l + alpha * v_l`` — exactly cmrm's intervention at positions ``all``
(up to float rounding; measured 3e-5..5e-5 in max logit on a real model, tested within 1e-4 here).
The result is an ordinary ``save_pretrained`` checkpoint that plain transformers, vLLM (whose Llama
reads ``mlp_bias``) and ``convert_hf_to_gguf.py`` load without cmrm. Where a down_proj bias is
not the residual add, or would be dropped on loading, the family is refused with the reason.

A baked shift applies to every position of every request, text-only requests included.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base.errors import CmrmError, UnsupportedModelError
from ..calibration.shift import ShiftVectors, library_versions
from ..models.vlm import VLM

EXACT_FAMILIES: tuple[str, ...] = ("llava", "llava_next", "idefics3", "smolvlm")
"""VLM families whose text decoder may be Llama: LLaVA-1.5, LLaVA-NeXT, Idefics3, SmolVLM (and the
organism, a LLaVA). The text decoder must also be Llama (:func:`bias_refusal`)."""

_NO_BIAS = (
    "whose MLP in transformers has no bias option, so the biases would be dropped on loading "
    "(vLLM and SGLang also drop bias tensors a model does not declare, without a word)"
)
_REASONS = {
    "mistral": f"its text decoder is Mistral, {_NO_BIAS}",
    "qwen2": f"its text decoder is Qwen2, {_NO_BIAS}",
    "qwen2_vl_text": f"its text decoder is Qwen2-VL's, {_NO_BIAS}",
    "qwen2_5_vl_text": f"its text decoder is Qwen2.5-VL's, {_NO_BIAS}",
    "phi3": f"its text decoder is Phi-3, {_NO_BIAS}",
    "gemma": "its text decoder is Gemma, whose MLP has no bias option",
    "gemma3_text": "its text decoder is Gemma 3, which normalises the MLP output "
    "(post_feedforward_layernorm) before the residual add, so a down_proj bias is not the add",
}


def bias_refusal(family: str, text_model_type: str) -> str | None:
    """None when a down_proj bias is exactly cmrm's residual add for this model; else why not."""
    if text_model_type != "llama":
        return _REASONS.get(
            text_model_type,
            f"its text decoder is {text_model_type!r}; a down_proj bias equals the residual add "
            "only for a Llama decoder (LlamaMLP with mlp_bias)",
        )
    if family not in EXACT_FAMILIES:
        return (
            f"the {family} family is not among those checked exact for a baked bias "
            f"({', '.join(EXACT_FAMILIES)})"
        )
    return None


def check_bias_export(family: str, text_model_type: str, model: str) -> None:
    """Raises UnsupportedModelError with the reason when ``model`` cannot carry a baked bias."""
    reason = bias_refusal(family, text_model_type)
    if reason is not None:
        raise UnsupportedModelError(
            f"cannot bake the shift into {model} ({family}): {reason}. Serve it with "
            "`cmrm serve` (exact for every supported family) or export a llama.cpp control "
            "vector (--format gguf-control-vector)"
        )


def _mlp(layer: nn.Module, index: int) -> nn.Module:
    mlp = getattr(layer, "mlp", None)
    parts = [getattr(mlp, name, None) for name in ("gate_proj", "up_proj", "down_proj")]
    if not isinstance(mlp, nn.Module) or not all(isinstance(p, nn.Linear) for p in parts):
        raise UnsupportedModelError(
            f"decoder layer {index} has no Llama MLP (mlp.gate_proj/up_proj/down_proj Linear); "
            "a baked bias needs one"
        )
    return mlp


def bake_bias(vlm: VLM, shift: ShiftVectors, alpha: float = 1.0) -> None:
    """Give every decoder layer's MLP biases, ``down_proj.bias = alpha * v_l`` (zero elsewhere),
    and set ``mlp_bias=True`` in the text config. Modifies ``vlm.model`` in place.

    Raises:
        UnsupportedModelError: the family is not exact (see :func:`bias_refusal`).
        IncompatibleShiftError: the shift was made for another model shape.
    """
    text = vlm.model.config.get_text_config()
    check_bias_export(vlm.family, str(text.model_type), vlm.model_id)
    shift.check_compatible(vlm.model_type, vlm.hidden_size, vlm.num_layers)
    mlps = [_mlp(layer, i) for i, layer in enumerate(vlm.layers.modules)]
    for index, mlp in enumerate(mlps):
        for name in ("gate_proj", "up_proj", "down_proj"):
            linear: nn.Linear = getattr(mlp, name)
            weight = linear.weight
            bias = torch.zeros(linear.out_features, dtype=torch.float32)
            if name == "down_proj" and index in shift.layers:
                bias = float(alpha) * shift.vector(index).to(torch.float32)
            linear.bias = nn.Parameter(bias.to(weight.device, weight.dtype), requires_grad=False)
    text.mlp_bias = True


def export_hf_bias(vlm: VLM, shift: ShiftVectors, out: str | Path, *, alpha: float = 1.0) -> Path:
    """Bake the shift into ``vlm`` (in place) and save model + processor to ``out``.

    The folder appears whole or not at all (written beside ``out``, then renamed), with
    ``cmrm_export.json`` recording the shift, alpha and semantics.

    Raises:
        CmrmError: ``out`` exists and is not empty; the family is not exact.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CmrmError(f"{out} exists and is not empty; choose a new -o folder or remove it")
    bake_bias(vlm, shift, alpha)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        vlm.model.save_pretrained(tmp)
        vlm.processor.save_pretrained(tmp)
        (tmp / "cmrm_export.json").write_text(json.dumps(_record(shift, alpha), indent=2) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _record(shift: ShiftVectors, alpha: float) -> dict[str, Any]:
    meta = shift.meta
    return {
        "format": "hf-bias",
        "alpha": float(alpha),
        "layers": list(shift.layers),
        "shift": {
            "source_model": meta.source_model,
            "estimator": meta.estimator,
            "null_image": meta.null_image,
            "contrast": meta.contrast,
            "anchor_hash": meta.anchor_hash,
        },
        "semantics": "h_l + alpha * v_l at every position of every request, text-only included",
        "versions": library_versions(),
    }
