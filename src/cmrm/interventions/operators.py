"""Operators: how a (scaled) shift vector changes a steered hidden state.

Every operator maps the hidden states of one decoder-layer call, ``hidden [B, T, H]``, the scaled
shift of each row, ``delta [B, H]`` (``alpha * v_l``, dataset- or sample-level), and the mask of
steered positions ``mask [B, T]`` to new hidden states. Positions outside the mask come back bit
for bit (``torch.where``), and ``alpha = 0`` is the identity for every operator (the hook is not
even run, see :func:`cmrm.interventions.steering.steer`).

- ``add`` — the paper (Liu et al. 2024, CMRM): ``h + alpha * v``.
- ``project`` — ShiftDC-style (Zou et al. 2025, arXiv 2502.13095): only the component of the
  shift along the layer's **safety direction** ``u`` (unit; the difference of text-only harmful
  and benign anchor means) is applied: ``h + alpha * <v, u> u``. The rest of the modality shift —
  what the image *shows* — is left alone.
- ``norm-preserving`` — add, then rescale each steered state to its pre-steer norm:
  ``(h + alpha v) * |h| / |h + alpha v|``; the direction moves, the scale the next layer's
  normalisation expects does not.
- ``gated`` — ASTRA-style adaptive steering (Wang et al., CVPR 2025): move along ``u`` by
  ``alpha * <v, u>``, but never past the text-only reference level ``r`` (the mean projection of
  text-only harmful anchor states on ``u`` at the read position): the move is
  ``min(alpha <v, u>, max(0, r - <h, u>))`` when it is positive. A state already at or beyond the
  reference — a request the model already reads as harmful — is not pushed further.
- ``conditional`` — add, but only to the rows that read as harmful: a row is steered at layer
  ``l`` when its state at the last prompt token, before steering, projects on ``u`` above the
  threshold ``t`` calibrated between the harmful and benign anchors *with their image* (the gate
  is decided in the prefill and kept for the generated tokens). In the spirit of ASTRA's adaptive
  steering: leave benign requests, image questions included, untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, cast

import torch
from torch import Tensor

from ..axes import SafetyAxis
from ..operators import OPERATORS


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


def _keep(hidden: Tensor, new: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask[..., None], new.to(hidden.dtype), hidden)


def _axis(axis: SafetyAxis | None, name: str, ref: Tensor) -> Tensor:
    if axis is None:  # checked up front by steer(); a guard for direct calls
        raise ValueError(f"operator {name!r} needs a safety direction")
    return axis.direction.to(ref.device, ref.dtype)


@dataclass(frozen=True)
class Add:
    gates: ClassVar[bool] = False
    name: ClassVar[str] = "add"
    needs_axis: ClassVar[bool] = False
    formula: ClassVar[str] = "h + alpha*v"

    def __call__(
        self, hidden: Tensor, delta: Tensor, mask: Tensor, axis: SafetyAxis | None
    ) -> Tensor:
        return _keep(hidden, hidden + delta[:, None, :], mask)


@dataclass(frozen=True)
class Project:
    gates: ClassVar[bool] = False
    name: ClassVar[str] = "project"
    needs_axis: ClassVar[bool] = True
    formula: ClassVar[str] = "h + alpha*<v,u> u"

    def __call__(
        self, hidden: Tensor, delta: Tensor, mask: Tensor, axis: SafetyAxis | None
    ) -> Tensor:
        u = _axis(axis, self.name, hidden)
        along = (delta.to(hidden.dtype) @ u)[:, None, None] * u
        return _keep(hidden, hidden + along, mask)


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
        return _keep(hidden, moved * scale, mask)


@dataclass(frozen=True)
class Gated:
    gates: ClassVar[bool] = False
    name: ClassVar[str] = "gated"
    needs_axis: ClassVar[bool] = True
    formula: ClassVar[str] = "h + min(alpha*<v,u>, max(0, r - <h,u>)) u   (when alpha*<v,u> > 0)"

    def __call__(
        self, hidden: Tensor, delta: Tensor, mask: Tensor, axis: SafetyAxis | None
    ) -> Tensor:
        u = _axis(axis, self.name, hidden).float()
        assert axis is not None
        h = hidden.float()
        step = (delta.float() @ u)[:, None].expand(-1, h.shape[1])  # [B, T]
        room = (axis.reference - h @ u).clamp_min(0.0)  # how far below the reference
        step = torch.where(step > 0, torch.minimum(step, room), step)
        return _keep(hidden, h + step[..., None] * u, mask)


@dataclass(frozen=True)
class Conditional(Add):
    gates: ClassVar[bool] = True
    name: ClassVar[str] = "conditional"
    needs_axis: ClassVar[bool] = True
    formula: ClassVar[str] = "h + alpha*v on rows with <h_last,u> > t, else h"


def get_operator(name: str) -> Operator:
    """The operator registered as ``name`` (:data:`cmrm.operators.OPERATORS`).

    Raises:
        UnknownNameError: not registered, with a did-you-mean suggestion.
    """
    return cast(Operator, OPERATORS.get(name)())
