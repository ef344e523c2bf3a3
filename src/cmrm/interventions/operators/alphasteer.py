"""``alphasteer`` — null-space-constrained steering (AlphaSteer): ``h + alpha * <w, h> v``.

After Sheng et al., "AlphaSteer: Learning Refusal Steering with Principled Null-Space
Constraint" (ICLR 2026, arXiv 2506.07022): the steering vector is a learnt linear map of the
state, ``s = Delta h`` with ``Delta = Delta~ P``, where ``P`` projects onto the null space of
benign activations (so ``Delta h_b ~ 0``: benign requests are left alone) and ``Delta~`` is
fitted by ridge regression so that ``Delta h_m`` reconstructs the target direction on harmful
ones. Here the target is the layer's CMRM shift ``v`` (text-only minus image-conditioned), a
single direction, so ``Delta = v w^T`` is rank one and ``w`` (``axis.gate``, fitted by
``calibrate(..., gate=True)`` on the anchors' image-conditioned states; see
:func:`cmrm.calibration.axes.fit_gate`) is all that is stored. At ``alpha = 1`` a harmful anchor
state receives about the full shift ``v`` and a benign one about none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ...calibration.axes import SafetyAxis
from .base import Bound, keep


@dataclass(frozen=True)
class AlphaSteer:
    gates: ClassVar[bool] = False
    name: ClassVar[str] = "alphasteer"
    needs_axis: ClassVar[bool] = True
    needs_gate: ClassVar[bool] = True
    formula: ClassVar[str] = "h + alpha*<w,h> v  (w: null space of benign states, ridge fit)"

    def __call__(
        self, hidden: Tensor, delta: Tensor, mask: Tensor, axis: SafetyAxis | None
    ) -> Tensor:
        if axis is None or axis.gate is None:  # checked up front by steer(); a guard
            raise ValueError("operator 'alphasteer' needs the safety axes' gate")
        return keep(hidden, self.bind(delta, axis, hidden)(hidden), mask)

    def bind(self, delta: Tensor, axis: SafetyAxis | None, ref: Tensor) -> Bound:
        if axis is None or axis.gate is None:  # checked up front by steer(); a guard
            raise ValueError("operator 'alphasteer' needs the safety axes' gate")
        w = axis.gate.to(ref.device, torch.float32)
        shift = delta.float()[:, None, :]

        def steered(hidden: Tensor) -> Tensor:
            h = hidden.float()
            score = h @ w  # [B, T]
            return h + score[..., None] * shift

        return steered


OPERATOR = AlphaSteer
