"""``project`` — ShiftDC-style (Zou et al. 2025, arXiv 2502.13095): ``h + alpha * <v, u> u``.

Only the component of the shift along the layer's **safety direction** ``u`` (unit; the difference
of text-only harmful and benign anchor means) is applied. The rest of the modality shift — what
the image *shows* — is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from ...calibration.axes import SafetyAxis
from .base import Bound, axis_direction, keep


@dataclass(frozen=True)
class Project:
    gates: ClassVar[bool] = False
    name: ClassVar[str] = "project"
    needs_axis: ClassVar[bool] = True
    formula: ClassVar[str] = "h + alpha*<v,u> u"

    def __call__(
        self, hidden: Tensor, delta: Tensor, mask: Tensor, axis: SafetyAxis | None
    ) -> Tensor:
        return keep(hidden, self.bind(delta, axis, hidden)(hidden), mask)

    def bind(self, delta: Tensor, axis: SafetyAxis | None, ref: Tensor) -> Bound:
        u = axis_direction(axis, self.name, ref)
        along = (delta.to(ref.dtype) @ u)[:, None, None] * u
        return lambda hidden: hidden + along


OPERATOR = Project
