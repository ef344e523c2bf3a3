"""What every operator shares: the :class:`Operator` protocol and two helpers.

An operator maps the hidden states of one decoder-layer call, ``hidden [B, T, H]``, the scaled
shift of each row, ``delta [B, H]`` (``alpha * v_l``, dataset- or sample-level), and the mask of
steered positions ``mask [B, T]`` to new hidden states. Positions outside the mask come back bit
for bit (:func:`keep`, a ``torch.where``), and ``alpha = 0`` is the identity for every operator
(the hook is not even run, see :func:`cmrm.interventions.steering.steer`). Each operator is one
module of this package; see its docstring for the formula and the paper it follows.

An operator may also define ``bind(delta, axis, ref) -> fn``: what does not depend on the hidden
states (the shift on the right device and dtype, its projection on the axis) computed once, and
``fn(hidden)`` the new states at *every* position, so that ``__call__(hidden, delta, mask, axis)``
is ``keep(hidden, bind(delta, axis, hidden)(hidden), mask)``. ``steer`` binds once per layer and
batch and skips the ``torch.where`` of :func:`keep` when every position is steered (the result is
the same bit for bit): the per-token cost of an operator is then its arithmetic alone. Operators
without ``bind`` are called as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from ...calibration.axes import SafetyAxis


class Operator(Protocol):
    """Maps ``hidden [B, T, H]``, ``delta [B, H]`` and ``mask [B, T]`` to new hidden states."""

    name: ClassVar[str]
    needs_axis: ClassVar[bool]
    gates: ClassVar[bool]
    """Steer only rows whose pre-steer last-prompt state projects above the axis threshold."""
    formula: ClassVar[str]

    def __call__(
        self, hidden: Tensor, delta: Tensor, mask: Tensor, axis: SafetyAxis | None
    ) -> Tensor: ...


Bound = Callable[[Tensor], Tensor]
"""``fn(hidden [B, T, H]) -> new states [B, T, H]`` at every position (see ``bind``)."""


def keep(hidden: Tensor, new: Tensor, mask: Tensor) -> Tensor:
    """``new`` at the steered positions (``mask``), ``hidden`` bit for bit elsewhere."""
    return torch.where(mask[..., None], new.to(hidden.dtype), hidden)


def axis_direction(axis: SafetyAxis | None, name: str, ref: Tensor) -> Tensor:
    """The unit safety direction ``u`` on ``ref``'s device and dtype."""
    if axis is None:  # checked up front by steer(); a guard for direct calls
        raise ValueError(f"operator {name!r} needs a safety direction")
    return axis.direction.to(ref.device, ref.dtype)
