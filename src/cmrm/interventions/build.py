"""Build an :class:`Intervention` from user options (CLI flags, a server request, a config).

One rule everywhere: a shift directory given **without** ``alpha`` and ``operator`` uses the
setting that ``cmrm tune`` recommended and stored in its ``shift.json`` (when it has one);
anything given explicitly wins; the defaults are the paper's (``add``, alpha 1, every layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..base.errors import CmrmError
from ..calibration.shift import ShiftVectors
from ..data.images import NullImage
from .operators import axis_operators, needs_axis
from .value import Intervention


@dataclass(frozen=True)
class InterventionOptions:
    """What a user may say about an intervention; ``None`` means "not given"."""

    shift: ShiftVectors | None = None
    sample_level: bool = False
    alpha: float | None = None
    operator: str | None = None
    positions: str | None = None
    layers: str | None = None
    null: str | None = None
    contrast: str | None = None
    generated: bool = True
    default_positions: str = "all"
    """Positions when neither the user nor a recommendation names them."""


def recommended(shift: ShiftVectors | None) -> Mapping[str, Any] | None:
    """The setting stored by ``cmrm tune`` in a shift, or None."""
    return shift.meta.recommended if shift is not None else None


def build_intervention(options: InterventionOptions) -> Intervention | None:
    """The intervention the options describe, or None for the model as it is.

    Raises:
        CmrmError: ``alpha``/``operator`` without a shift or ``sample_level`` (it would change
            nothing), or both a shift's dataset source and ``sample_level`` asked for
            incompatibly.
    """
    o = options
    if o.shift is None and not o.sample_level:
        given = [
            name
            for name, value in (
                ("--alpha", o.alpha),
                ("--operator", o.operator),
                ("--positions", o.positions),
                ("--layers", o.layers),
            )
            if value is not None
        ]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise CmrmError(
                f"{', '.join(given)} only {verb} with a shift: --shift DIR or --sample-level "
                f"(nothing would be steered); add one or drop {' and '.join(given)}"
            )
        return None
    rec = dict(recommended(o.shift) or {}) if o.alpha is None and o.operator is None else {}
    source = "sample" if o.sample_level else str(rec.get("source", "dataset"))
    operator = o.operator or str(rec.get("operator", "add"))
    if o.sample_level and o.shift is not None and not needs_axis(operator):
        raise CmrmError(
            "use either --shift DIR (dataset-level) or --sample-level, not both: with "
            "--sample-level a shift only supplies the safety axes of the operators that need "
            f"them ({', '.join(axis_operators())}), and operator {operator!r} does not"
        )
    layers = o.layers if o.layers is not None else rec.get("layers")
    return Intervention(
        source=source,  # type: ignore[arg-type]  # validated by Intervention
        operator=operator,
        alpha=float(o.alpha if o.alpha is not None else rec.get("alpha", 1.0)),
        layers=tuple(layers) if isinstance(layers, list) else layers,
        positions=(o.positions or str(rec.get("positions", o.default_positions))),  # type: ignore[arg-type]
        generated=o.generated,
        shift=o.shift,
        null=NullImage.parse(o.null or str(rec.get("null", "blank"))),
        contrast=(o.contrast or str(rec.get("contrast", "null"))),  # type: ignore[arg-type]
    )
