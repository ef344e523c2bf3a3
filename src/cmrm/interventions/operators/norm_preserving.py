"""``norm-preserving`` — add, then rescale each steered state to its pre-steer norm.

``(h + alpha v) * |h| / |h + alpha v|``: the direction moves, the scale the next layer's
normalisation expects does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from ...calibration.axes import SafetyAxis
from .base import keep


@dataclass(frozen=True)
class NormPreserving:
    gates: ClassVar[bool] = False
    name: ClassVar[str] = "norm-preserving"
    needs_axis: ClassVar[bool] = False
    formula: ClassVar[str] = "(h + alpha*v) * |h| / |h + alpha*v|"

    def __call__(
        self, hidden: Tensor, delta: Tensor, mask: Tensor, axis: SafetyAxis | None
    ) -> Tensor:
        h = hidden.float()
        moved = h + delta.float()[:, None, :]
        scale = h.norm(dim=-1, keepdim=True) / moved.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return keep(hidden, moved * scale, mask)


OPERATOR = NormPreserving
