"""Representation-gap analysis: how far image inputs sit from text-only ones, layer by layer.

See ``docs/gap.md`` for the metric definitions and how to read the figures.
"""

from __future__ import annotations

from .accumulator import GapAccumulator
from .metrics import (
    ProbeResult,
    centroid_cosine,
    centroid_distance,
    gap_closed,
    paired_cosine,
    probe_accuracy,
    spread,
)
from .results import GapReport, LayerGap, VariantGap

__all__ = [
    "GapAccumulator",
    "GapReport",
    "LayerGap",
    "ProbeResult",
    "VariantGap",
    "centroid_cosine",
    "centroid_distance",
    "gap_closed",
    "paired_cosine",
    "probe_accuracy",
    "spread",
]
