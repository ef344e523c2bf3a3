"""Model adapters: one :class:`FamilySpec` per VLM family, loading, bundled models, encoding.

Imported lazily: listing families or bundled models does not import torch or transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base.lazy import attach

if TYPE_CHECKING:
    from .families import FAMILIES as FAMILIES
    from .families import FAMILY_REGISTRY as FAMILY_REGISTRY
    from .families import FamilySpec as FamilySpec
    from .families import family_for as family_for
    from .loading import from_model as from_model
    from .loading import load_bundled as load_bundled
    from .loading import load_vlm as load_vlm
    from .loading import parse_dtype as parse_dtype
    from .registry import MODELS as MODELS
    from .vlm import VLM as VLM
    from .vlm import Batch as Batch

_EXPORTS = {
    "FAMILIES": ".families",
    "FAMILY_REGISTRY": ".families",
    "FamilySpec": ".families",
    "family_for": ".families",
    "from_model": ".loading",
    "load_bundled": ".loading",
    "load_vlm": ".loading",
    "parse_dtype": ".loading",
    "MODELS": ".registry",
    "VLM": ".vlm",
    "Batch": ".vlm",
}

__all__ = [
    "FAMILIES",
    "FAMILY_REGISTRY",
    "MODELS",
    "VLM",
    "Batch",
    "FamilySpec",
    "family_for",
    "from_model",
    "load_bundled",
    "load_vlm",
    "parse_dtype",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, _EXPORTS, globals())
