"""``add`` — the paper's operator (Liu et al. 2024, CMRM, arXiv 2410.09047): ``h + alpha * v``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from ...calibration.axes import SafetyAxis
from .base import Bound, keep


@dataclass(frozen=True)
class Add:
    gates: ClassVar[bool] = False
    name: ClassVar[str] = "add"
    needs_axis: ClassVar[bool] = False
    formula: ClassVar[str] = "h + alpha*v"

    def __call__(
        self, hidden: Tensor, delta: Tensor, mask: Tensor, axis: SafetyAxis | None
    ) -> Tensor:
        return keep(hidden, self.bind(delta, axis, hidden)(hidden), mask)

    def bind(self, delta: Tensor, axis: SafetyAxis | None, ref: Tensor) -> Bound:
        shift = delta[:, None, :]
        return lambda hidden: hidden + shift


OPERATOR = Add
