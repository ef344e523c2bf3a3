"""cmrm: Cross-Modality Representation Manipulation for vision-language models.

Public API (imported lazily, so ``import cmrm`` stays cheap; typed through the
``TYPE_CHECKING`` imports below)::

    vlm = cmrm.load_vlm("llava-hf/llava-1.5-7b-hf", dtype="bfloat16", device="cuda")
    shift = cmrm.calibrate(vlm, anchors, null=cmrm.NullImage.parse("blank"))
    iv = cmrm.Intervention("dataset", operator="add", alpha=1.0, shift=shift)
    answers = cmrm.generate_items(vlm, items, iv)
    with cmrm.steer(vlm, shift, alpha=1.0, positions="all"):
        ...
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from .base.lazy import attach

if TYPE_CHECKING:
    from .base.errors import CmrmError as CmrmError
    from .calibration.capture import capture_states as capture_states
    from .calibration.estimate import calibrate as calibrate
    from .calibration.estimate import sample_shifts as sample_shifts
    from .calibration.shift import SampleShift as SampleShift
    from .calibration.shift import ShiftVectors as ShiftVectors
    from .data.images import NullImage as NullImage
    from .data.images import load_image as load_image
    from .data.items import Item as Item
    from .data.items import read_jsonl as read_jsonl
    from .generation.baselines import Baseline as Baseline
    from .generation.generate import GenerationOptions as GenerationOptions
    from .generation.generate import generate_batch as generate_batch
    from .generation.generate import generate_items as generate_items
    from .generation.methods import generate_method as generate_method
    from .interventions.apply import intervene as intervene
    from .interventions.operators import OPERATORS as OPERATORS
    from .interventions.steering import steer as steer
    from .interventions.value import Intervention as Intervention
    from .models import VLM as VLM
    from .models import from_model as from_model
    from .models import load_vlm as load_vlm

try:
    __version__ = version("cmrm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_EXPORTS = {
    "CmrmError": ".base.errors",
    "Item": ".data.items",
    "read_jsonl": ".data.items",
    "NullImage": ".data.images",
    "load_image": ".data.images",
    "VLM": ".models",
    "load_vlm": ".models",
    "from_model": ".models",
    "capture_states": ".calibration.capture",
    "ShiftVectors": ".calibration.shift",
    "SampleShift": ".calibration.shift",
    "calibrate": ".calibration.estimate",
    "sample_shifts": ".calibration.estimate",
    "steer": ".interventions.steering",
    "Intervention": ".interventions.value",
    "intervene": ".interventions.apply",
    "OPERATORS": ".interventions.operators",
    "Baseline": ".generation.baselines",
    "generate_method": ".generation.methods",
    "GenerationOptions": ".generation.generate",
    "generate_items": ".generation.generate",
    "generate_batch": ".generation.generate",
}

__all__ = [
    "OPERATORS",
    "VLM",
    "Baseline",
    "CmrmError",
    "GenerationOptions",
    "Intervention",
    "Item",
    "NullImage",
    "SampleShift",
    "ShiftVectors",
    "__version__",
    "calibrate",
    "capture_states",
    "from_model",
    "generate_batch",
    "generate_items",
    "generate_method",
    "intervene",
    "load_image",
    "load_vlm",
    "read_jsonl",
    "sample_shifts",
    "steer",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, _EXPORTS, globals())
