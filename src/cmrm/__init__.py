"""cmrm: Cross-Modality Representation Manipulation for vision-language models.

Public API (imported lazily, so ``import cmrm`` stays cheap)::

    vlm = cmrm.load_vlm("llava-hf/llava-1.5-7b-hf", dtype="bfloat16", device="cuda")
    shift = cmrm.calibrate(vlm, anchors, null=cmrm.NullImage.parse("blank"))
    with cmrm.steer(vlm, shift, alpha=1.0, positions="all"):
        ...
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("cmrm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_EXPORTS = {
    "CmrmError": "errors",
    "Item": "items",
    "read_jsonl": "items",
    "NullImage": "images",
    "load_image": "images",
    "VLM": "models",
    "load_vlm": "models",
    "from_model": "models",
    "capture_states": "capture",
    "ShiftVectors": "shift",
    "SampleShift": "shift",
    "calibrate": "estimate",
    "sample_shifts": "estimate",
    "steer": "interventions.steering",
    "Intervention": "interventions",
    "intervene": "interventions",
    "Baseline": "baselines",
    "generate_method": "methods",
    "GenerationOptions": "generate",
    "generate_items": "generate",
    "generate_batch": "generate",
}

__all__ = ["__version__", *sorted(_EXPORTS)]  # noqa: PLE0604


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'cmrm' has no attribute {name!r}")
