"""Model adapters: one :class:`FamilySpec` per VLM family, loading, and prompt encoding."""

from .families import FAMILIES, FamilySpec, family_for
from .loading import from_model, load_vlm, parse_dtype
from .vlm import VLM, Batch

__all__ = [
    "FAMILIES",
    "VLM",
    "Batch",
    "FamilySpec",
    "family_for",
    "from_model",
    "load_vlm",
    "parse_dtype",
]
