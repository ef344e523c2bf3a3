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
from .base import Bound, axis_direction, keep


@dataclass(frozen=True)
class Gated:
    gates: ClassVar[bool] = False
    name: ClassVar[str] = "gated"
    needs_axis: ClassVar[bool] = True
    formula: ClassVar[str] = "h + min(alpha*<v,u>, max(0, r - <h,u>)) u   (when alpha*<v,u> > 0)"

    def __call__(
        self, hidden: Tensor, delta: Tensor, mask: Tensor, axis: SafetyAxis | None
    ) -> Tensor:
        return keep(hidden, self.bind(delta, axis, hidden)(hidden), mask)

    def bind(self, delta: Tensor, axis: SafetyAxis | None, ref: Tensor) -> Bound:
        u = axis_direction(axis, self.name, ref).float()
        assert axis is not None
        reference = axis.reference
        step = (delta.float() @ u)[:, None]  # [B, 1]: the move of each row, before the cap
        up = step > 0
        if not bool(up.any()):  # no row moves up: nothing is capped
            along = step[..., None] * u

            return lambda hidden: hidden.float() + along

        every = bool(up.all())

        def moved(hidden: Tensor) -> Tensor:
            h = hidden.float()
            room = (reference - h @ u).clamp_min(0.0)  # [B, T]: how far below the reference
            capped = torch.minimum(step, room)
            if not every:
                capped = torch.where(up, capped, step)
            return h + capped[..., None] * u

        return moved


OPERATOR = Gated
