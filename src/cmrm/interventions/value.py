"""The one value that says everything about an intervention.

An :class:`Intervention` names where the vectors come from (``dataset``: a calibrated
:class:`~cmrm.calibration.shift.ShiftVectors`; ``sample``: per input, from two extra prefill passes), the
**operator** that applies them (:mod:`cmrm.interventions.operators`), alpha, the layers, the
positions, and whether generated tokens are steered too. ``steer()``, generation, ``cmrm eval``,
``cmrm gap``, ``cmrm tune``, the server and the demo all take this value.

Baselines that change the *input* rather than the hidden states (``none``, ``text-only``,
AdaShield's defence prompt, ECSO's caption-then-answer) are not interventions: see
:mod:`cmrm.generation.baselines`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..base.errors import CmrmError
from ..base.validation import check_alpha
from ..calibration.names import CONTRASTS, Contrast
from ..calibration.shift import ShiftVectors
from ..data.images import NullImage
from ..models.names import Positions
from ..models.positions import check_positions
from .names import SOURCES, Source
from .operators import get_operator


@dataclass(frozen=True)
class Intervention:
    """An intervention on the text decoder's hidden states.

    Example:
        >>> shift = ShiftVectors.load("shift/")
        >>> iv = Intervention("dataset", operator="project", alpha=0.5, layers=(10,), shift=shift)
        >>> answers = generate_items(vlm, items, iv)  # doctest: +SKIP
    """

    source: Source = "dataset"
    operator: str = "add"
    alpha: float = 1.0
    layers: str | tuple[int, ...] | None = None
    """Decoder layers to steer (``None``/``"all"``: every layer the vectors have; ``"8:16"``...)."""
    positions: Positions = "all"
    generated: bool = True
    """Also steer generated tokens (the published method); False: prompt positions only."""
    shift: ShiftVectors | None = field(default=None, repr=False, compare=False)
    """The dataset-level vectors; for ``sample`` with ``project``/``gated``, the source of the
    safety axes."""
    null: NullImage = field(default_factory=NullImage)
    """Null image of sample-level vectors."""
    contrast: Contrast = "null"
    """Contrast of sample-level vectors: ``null`` (the paper) or ``image``."""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise CmrmError(
                f"intervention source must be one of {', '.join(SOURCES)}, got {self.source!r}"
            )
        op = get_operator(self.operator)
        check_alpha(self.alpha)
        check_positions(self.positions)
        if self.contrast not in CONTRASTS:
            raise CmrmError(f"contrast must be one of {CONTRASTS}, got {self.contrast!r}")
        if self.source == "dataset" and self.shift is None:
            raise CmrmError(
                "a dataset-level intervention needs a calibrated shift (--shift DIR, from "
                "`cmrm calibrate` or `cmrm tune`)"
            )
        if op.needs_axis and (self.shift is None or self.shift.axes is None):
            raise CmrmError(
                f"operator {self.operator!r} needs the safety axes stored with a calibrated "
                "shift: pass --shift DIR calibrated on anchors with harmful and benign kinds"
            )

    @property
    def method(self) -> str:
        """The method name of the evaluation grid (``dataset`` or ``sample``)."""
        return self.source

    @property
    def label(self) -> str:
        """A short human label, e.g. ``dataset/project a=0.5 last L10``."""
        layers = "" if self.layers in (None, "all") else f" L{_layers_text(self.layers)}"
        gen = "" if self.generated else " prompt-only"
        return f"{self.source}/{self.operator} a={self.alpha:g} {self.positions}{layers}{gen}"

    def describe(self) -> dict[str, Any]:
        """A JSON-safe record of the intervention (run configs, rows, server responses)."""
        out: dict[str, Any] = {
            "method": self.source,
            "operator": self.operator,
            "alpha": float(self.alpha),
            "positions": self.positions,
            "layers": _layers_json(self.layers),
        }
        if not self.generated:
            out["generated"] = False
        if self.source == "sample":
            out.update(null=self.null.spec, contrast=self.contrast)
        if self.shift is not None:
            meta = self.shift.meta
            out["shift"] = {
                "source_model": meta.source_model,
                "estimator": meta.estimator,
                "anchor_hash": meta.anchor_hash,
                "sequential": meta.sequential,
            }
        return out


def _layers_text(layers: str | tuple[int, ...] | None) -> str:
    if isinstance(layers, tuple):
        return ",".join(str(x) for x in layers)
    return str(layers)


def _layers_json(layers: str | tuple[int, ...] | None) -> Any:
    return list(layers) if isinstance(layers, tuple) else layers
