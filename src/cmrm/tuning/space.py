"""The search space of ``cmrm tune``: settings, the calibrations they need, and their order.

A :class:`Setting` is everything that decides what an intervention does: the vectors' source
(dataset/sample), the **operator**, alpha, the layer band, the positions, and the calibration
:class:`Variant` the dataset-level vectors come from (estimator, contrast, independent or
sequential). Settings are enumerated group by group — a group shares variant, band, positions and
operator and differs only in alpha — and visited breadth-first by alpha (every group's smallest
alpha first), so that a ``--budget`` cut still covers every operator and band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..base.errors import ConfigError
from ..calibration.names import CONTRASTS, ESTIMATORS
from ..interventions.names import SOURCES
from ..interventions.operators import operator_names
from ..models.names import POSITIONS

DEFAULT_ALPHAS = (0.125, 0.25, 0.5, 1.0, 2.0)
"""A log grid (factor 2) around the paper's alpha = 1."""


@dataclass(frozen=True)
class Variant:
    """How dataset-level vectors are calibrated. A sequential calibration steers its band at its
    positions while measuring, so it belongs to one (band, positions)."""

    estimator: str = "mean"
    contrast: str = "null"
    sequential: bool = False
    band: str = "all"
    positions: str = "all"

    @property
    def key(self) -> str:
        base = f"{self.estimator}-{self.contrast}"
        if not self.sequential:
            return f"{base}-independent"
        return f"{base}-sequential-{_slug(self.band)}-{self.positions}"


@dataclass(frozen=True)
class Setting:
    """One trial of the search."""

    source: str
    operator: str
    alpha: float
    band: str
    positions: str
    variant: Variant

    @property
    def group(self) -> tuple[Any, ...]:
        return (self.source, self.variant, self.band, self.positions, self.operator)

    @property
    def key(self) -> str:
        """A stable, file-name-safe id, e.g. ``dataset-add-a0.5-L10-last-mean-null-independent``."""
        return (
            f"{self.source}-{self.operator}-a{self.alpha:g}-L{_slug(self.band)}-{self.positions}-"
            f"{self.variant.key}"
        )

    @property
    def layers(self) -> str | None:
        return None if self.band == "all" else self.band

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "operator": self.operator,
            "alpha": self.alpha,
            "layers": self.layers,
            "positions": self.positions,
            "variant": asdict(self.variant),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Setting:
        return cls(
            source=data["source"],
            operator=data["operator"],
            alpha=float(data["alpha"]),
            band=data["layers"] or "all",
            positions=data["positions"],
            variant=Variant(**data["variant"]),
        )


def _slug(band: str) -> str:
    return band.replace(":", "-").replace(",", "_")


def auto_bands(num_layers: int) -> tuple[str, ...]:
    """``all``, the middle third, and single layers at one third and one half of the depth."""
    third = max(1, num_layers // 3)
    bands = ["all", f"{third}:{min(num_layers, 2 * third)}", str(third), str(num_layers // 2)]
    return tuple(dict.fromkeys(bands))


@dataclass(frozen=True)
class TuneSpace:
    """The grid; every field is a list of choices (``bands`` may contain ``auto``)."""

    operators: tuple[str, ...] = field(default_factory=operator_names)
    estimators: tuple[str, ...] = ("mean",)
    contrasts: tuple[str, ...] = ("null", "image")
    sequential: tuple[bool, ...] = (False, True)
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    bands: tuple[str, ...] = ("auto",)
    positions: tuple[str, ...] = ("last", "all")
    sources: tuple[str, ...] = ("dataset",)
    operator_alphas: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """Per operator, its own alpha grid instead of ``alphas`` (operators differ in scale: ``add``
    breaks where ``project`` has barely started)."""
    extra: tuple[TuneSpace, ...] = ()
    """Further sub-grids searched with this one (a union, not a product): e.g. every operator on
    one sequential all-layer calibration, and only ``add``/``project`` on single layers. Their
    settings join this grid's, breadth-first by alpha across all groups; a setting in two
    sub-grids is tried once."""

    def __post_init__(self) -> None:
        checks: list[tuple[str, Sequence[Any], Sequence[Any]]] = [
            ("operator", self.operators, operator_names()),
            ("estimator", self.estimators, ESTIMATORS),
            ("contrast", self.contrasts, CONTRASTS),
            ("positions", self.positions, POSITIONS),
            ("source", self.sources, SOURCES),
        ]
        for what, given, valid in checks:
            bad = [g for g in given if g not in valid]
            if bad or not given:
                raise ConfigError(
                    f"tune: {what} choices must be among {', '.join(map(str, valid))}; "
                    f"got {list(given) or '(none)'}"
                )
        grids = [self.alphas, *self.operator_alphas.values()]
        if any(not g or any(not math.isfinite(a) or a <= 0 for a in g) for g in grids):
            raise ConfigError(f"tune: alphas must be positive finite numbers, got {grids}")
        stray = sorted(set(self.operator_alphas) - set(self.operators))
        if stray:
            raise ConfigError(
                f"tune: alpha grids given for operators {stray} that the search does not try "
                f"(operators: {', '.join(self.operators)})"
            )
        if not self.bands or not self.sequential:
            raise ConfigError("tune: give at least one layer band and one sequential choice")

    def resolved_bands(self, num_layers: int) -> tuple[str, ...]:
        out: list[str] = []
        for band in self.bands:
            out.extend(auto_bands(num_layers) if band == "auto" else (band,))
        return tuple(dict.fromkeys(out))

    def settings(self, num_layers: int) -> list[Setting]:
        """Every setting of this grid and its sub-grids, breadth-first by alpha across groups."""
        groups: list[list[Setting]] = []
        seen: set[str] = set()
        for space in (self, *self.extra):
            for group in space.groups(num_layers):
                fresh = [s for s in group if s.key not in seen]
                seen.update(s.key for s in fresh)
                if fresh:
                    groups.append(fresh)
        out: list[Setting] = []
        for rank in range(max(len(g) for g in groups) if groups else 0):
            out.extend(group[rank] for group in groups if rank < len(group))
        return out

    def groups(self, num_layers: int) -> list[list[Setting]]:
        """This grid's groups (without its sub-grids), each sorted by alpha."""
        groups: list[list[Setting]] = []
        for source in self.sources:
            for band in self.resolved_bands(num_layers):
                for positions in self.positions:
                    for variant in self._variants(source, band, positions):
                        for op in self.operators:
                            groups.append(
                                [
                                    Setting(source, op, float(a), band, positions, variant)
                                    for a in sorted(self.alphas_of(op))
                                ]
                            )
        return groups

    def alphas_of(self, operator: str) -> tuple[float, ...]:
        return tuple(self.operator_alphas.get(operator, self.alphas))

    @property
    def needs_gate(self) -> bool:
        """Whether an operator of the search needs the gate (see ``calibrate(gate=True)``)."""
        from ..interventions.operators import OPERATORS

        own = any(getattr(OPERATORS.get(op), "needs_gate", False) for op in self.operators)
        return own or any(space.needs_gate for space in self.extra)

    def _variants(self, source: str, band: str, positions: str) -> list[Variant]:
        if source == "sample":  # vectors per input (with this contrast); the calibration only
            # supplies the safety axes
            return [Variant(self.estimators[0], contrast, False) for contrast in self.contrasts]
        multi = band == "all" or ":" in band or "," in band
        out = []
        for estimator in self.estimators:
            for contrast in self.contrasts:
                for seq in self.sequential:
                    if seq and not multi:
                        continue  # one layer: nothing to compound
                    out.append(
                        Variant(estimator, contrast, True, band, positions)
                        if seq
                        else Variant(estimator, contrast, False)
                    )
        return out
