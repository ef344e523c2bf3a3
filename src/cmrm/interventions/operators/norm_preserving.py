"""``norm-preserving`` — add, then rescale each steered state to its pre-steer norm.

``(h + alpha v) * |h| / |h + alpha v|``: the direction moves, the scale the next layer's
normalisation expects does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ...calibration.axes import SafetyAxis
from .base import Bound, keep


@dataclass(frozen=True)
class NormPreserving:
    gates: ClassVar[bool] = False
    name: ClassVar[str] = "norm-preserving"
    needs_axis: ClassVar[bool] = False
    formula: ClassVar[str] = "(h + alpha*v) * |h| / |h + alpha*v|"

    def __call__(
        self, hidden: Tensor, delta: Tensor, mask: Tensor, axis: SafetyAxis | None
    ) -> Tensor:
        return keep(hidden, self.bind(delta, axis, hidden)(hidden), mask)

    def bind(self, delta: Tensor, axis: SafetyAxis | None, ref: Tensor) -> Bound:
        shift = delta.float()[:, None, :]

        def moved(hidden: Tensor) -> Tensor:
            # in place on the temporaries (same arithmetic, fewer allocations per token)
            h = hidden if hidden.dtype == torch.float32 else hidden.float()
            moved = h + shift
            norm = torch.linalg.vector_norm(moved, dim=-1, keepdim=True).clamp_min_(1e-12)
            scale: Tensor = torch.linalg.vector_norm(h, dim=-1, keepdim=True).div_(norm)
            return moved.mul_(scale)

        return moved


OPERATOR = NormPreserving
