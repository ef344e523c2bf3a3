"""Frozen results of a gap analysis: per variant, per layer, and the whole report (JSON-able)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..base.errors import CmrmError

FORMAT_VERSION = 1


def _json_float(value: float) -> float | None:
    """JSON has no NaN/inf: write them as null (a reason is recorded next to the probe)."""
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class VariantGap:
    """One variant against the text-only states at one layer (definitions: ``metrics``)."""

    variant: str
    n: int
    distance: float
    normalised_distance: float
    spread: float
    paired_cosine: float
    n_pairs: int
    centroid_cosine: float
    probe_accuracy: float
    probe_folds: int
    probe_n: int
    probe_note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: _json_float(v) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class NullFidelity:
    """How well one null image stands in for the real images at one layer.

    With ``s_img = mean(text) - mean(image)`` and ``s_null = mean(text) - mean(null)``:
    ``cosine`` is ``cos(s_null, s_img)``; ``closed`` the fraction of the real-image gap that the
    null shift closes, ``1 - |s_img - s_null| / |s_img|`` (1: perfect stand-in; <= 0: none).
    """

    cosine: float
    closed: float

    def to_json(self) -> dict[str, Any]:
        return {"cosine": _json_float(self.cosine), "closed": _json_float(self.closed)}


@dataclass(frozen=True)
class LayerGap:
    """All variants at one decoder layer; ``gap_closed`` is ``nan`` without a steered variant."""

    layer: int
    n_text: int
    text_spread: float
    variants: tuple[VariantGap, ...]
    gap_closed: float = math.nan
    null_fidelity: Mapping[str, NullFidelity] = field(default_factory=dict)
    """Per null variant (``null:blank:white`` ...), when the data has real images."""

    def get(self, variant: str) -> VariantGap:
        for gap in self.variants:
            if gap.variant == variant:
                return gap
        names = [g.variant for g in self.variants]
        raise CmrmError(f"no variant {variant!r} at layer {self.layer}; have {names}")

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "n_text": self.n_text,
            "text_spread": _json_float(self.text_spread),
            "gap_closed": _json_float(self.gap_closed),
            "variants": {g.variant: g.to_json() for g in self.variants},
            "null_fidelity": {k: v.to_json() for k, v in self.null_fidelity.items()},
        }


@dataclass(frozen=True)
class GapReport:
    """The whole analysis: one :class:`LayerGap` per captured layer, plus what produced it.

    ``primary`` is the variant the headline numbers use ("image" when the data has images);
    ``steered`` the same variant under CMRM, when a shift was given.
    """

    layers: tuple[LayerGap, ...]
    variants: tuple[str, ...]
    primary: str
    steered: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def layer(self, index: int) -> LayerGap:
        for row in self.layers:
            if row.layer == index:
                return row
        raise CmrmError(f"layer {index} was not analysed; have {[r.layer for r in self.layers]}")

    def series(self, variant: str, metric: str) -> list[float]:
        """One metric of one variant across layers, e.g. ``series("image", "probe_accuracy")``."""
        return [float(getattr(row.get(variant), metric)) for row in self.layers]

    @property
    def largest_gap_layer(self) -> int:
        """The layer where the primary variant's normalised centroid distance is largest."""
        values = [
            (v if math.isfinite(v) else -math.inf, row.layer)
            for row, v in zip(
                self.layers, self.series(self.primary, "normalised_distance"), strict=True
            )
        ]
        return max(values)[1]

    @property
    def plot_layers(self) -> tuple[int, ...]:
        """First, middle, last and largest-gap layers (distinct, sorted)."""
        indices = [row.layer for row in self.layers]
        chosen = {indices[0], indices[len(indices) // 2], indices[-1], self.largest_gap_layer}
        return tuple(sorted(chosen))

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "primary": self.primary,
            "steered": self.steered,
            "variants": list(self.variants),
            "largest_gap_layer": self.largest_gap_layer,
            "meta": dict(self.meta),
            "layers": [row.to_json() for row in self.layers],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GapReport:
        """Read back :meth:`to_json` output (nulls become NaN)."""

        def num(value: Any) -> Any:
            return math.nan if value is None else value

        try:
            rows = tuple(
                LayerGap(
                    layer=row["layer"],
                    n_text=row["n_text"],
                    text_spread=num(row["text_spread"]),
                    gap_closed=num(row["gap_closed"]),
                    variants=tuple(
                        VariantGap(**{k: num(v) for k, v in gap.items()})
                        for gap in row["variants"].values()
                    ),
                    null_fidelity={
                        k: NullFidelity(num(v["cosine"]), num(v["closed"]))
                        for k, v in row.get("null_fidelity", {}).items()
                    },
                )
                for row in data["layers"]
            )
            return cls(
                rows,
                tuple(data["variants"]),
                data["primary"],
                data["steered"],
                dict(data.get("meta", {})),
            )
        except (KeyError, TypeError) as err:
            raise CmrmError(f"not a gap report (metrics.json): {err!r}") from err
