"""``gated`` — ASTRA-style adaptive steering (Wang et al., CVPR 2025), never past the reference.

Move along ``u`` by ``alpha * <v, u>``, but never past the text-only reference level ``r`` (the
mean projection of text-only harmful anchor states on ``u`` at the read position): the move is
``min(alpha <v, u>, max(0, r - <h, u>))`` when it is positive. A state already at or beyond the
reference — a request the model already reads as harmful — is not pushed further.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ...calibration.axes import SafetyAxis
from .base import axis_direction, keep


@dataclass(frozen=True)
class Gated:
    gates: ClassVar[bool] = False
    name: ClassVar[str] = "gated"
    needs_axis: ClassVar[bool] = True
    formula: ClassVar[str] = "h + min(alpha*<v,u>, max(0, r - <h,u>)) u   (when alpha*<v,u> > 0)"

    def __call__(
        self, hidden: Tensor, delta: Tensor, mask: Tensor, axis: SafetyAxis | None
    ) -> Tensor:
        u = axis_direction(axis, self.name, hidden).float()
        assert axis is not None
        h = hidden.float()
        step = (delta.float() @ u)[:, None].expand(-1, h.shape[1])  # [B, T]
        room = (axis.reference - h @ u).clamp_min(0.0)  # how far below the reference
        step = torch.where(step > 0, torch.minimum(step, room), step)
        return keep(hidden, h + step[..., None] * u, mask)


OPERATOR = Gated
