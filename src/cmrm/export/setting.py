"""What an export bakes: the vectors and alpha of a shift, or of the setting ``cmrm tune``
recommended for it, when that setting is a constant vector per layer.

Engines that take a steering vector (llama.cpp control vectors, baked biases) add the same vector
to every position of every request. ``add`` is such a vector (``alpha * v_l``), and so is
``project`` with dataset-level vectors (``alpha * <v_l, u_l> u_l``). ``norm-preserving`` and
``gated`` depend on each hidden state, and sample-level vectors on each input: they cannot be
exported, and asking for them is an error that says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..base.errors import CmrmError
from ..calibration.shift import ShiftVectors


@dataclass(frozen=True)
class Baked:
    """The vectors to write and the alpha that scales them."""

    shift: ShiftVectors
    alpha: float
    note: str
    """How they were chosen (printed by the CLI)."""


def baked_setting(shift: ShiftVectors, alpha: float | None) -> Baked:
    """``alpha`` times the shift's vectors when ``alpha`` is given; else the recommendation of
    ``cmrm tune`` (its layers, operator and alpha) if the shift has one; else alpha 1.

    Raises:
        CmrmError: the recommended setting is not a constant vector per layer.
    """
    rec = shift.meta.recommended
    if alpha is not None or rec is None:
        value = 1.0 if alpha is None else float(alpha)
        return Baked(shift, value, f"add, alpha {value:g}, every layer of the shift")
    if rec.get("abstain"):
        closest = rec.get("closest") or {}
        raise CmrmError(
            "tune recommends no intervention for this shift (no setting it tried met its "
            f"constraints; the closest was {closest.get('key', '?')}), so there is nothing to "
            f"export; pass --alpha {closest.get('alpha', 'A')} to export add at that alpha anyway"
        )
    operator, source = str(rec.get("operator", "add")), str(rec.get("source", "dataset"))
    if source != "dataset" or operator not in ("add", "project"):
        raise CmrmError(
            f"the recommended setting ({source}-level {operator}) depends on each input or "
            "state, so no engine can apply it as one vector per layer; pass --alpha A to export "
            "the paper's add with this shift's vectors, or serve the recommendation with "
            "`cmrm serve --shift DIR`"
        )
    layers = rec.get("layers")
    chosen = shift if layers in (None, "all") else _only(shift, str(layers))
    if operator == "project":
        chosen = _projected(chosen)
    value = float(rec.get("alpha", 1.0))
    where = "every layer" if layers in (None, "all") else f"layers {layers}"
    return Baked(chosen, value, f"tune's recommendation: {operator}, alpha {value:g}, {where}")


def _only(shift: ShiftVectors, spec: str) -> ShiftVectors:
    from ..models.layers import parse_layer_spec

    return shift.with_layers(tuple(parse_layer_spec(spec, shift.meta.num_layers)))


def _projected(shift: ShiftVectors) -> ShiftVectors:
    """The vectors' components along the safety axes, ``<v_l, u_l> u_l``."""
    if shift.axes is None:
        raise CmrmError(
            "the recommended operator project needs the shift's safety axes; it has none"
        )
    u = shift.axes.directions
    vectors = (shift.vectors * u).sum(dim=-1, keepdim=True) * u
    return replace(shift, vectors=vectors.to(torch.float32))
