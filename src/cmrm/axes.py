"""Safety axes: per layer, the direction that separates harmful from benign text-only requests.

Calibrated from the same anchor pass as the shift (anchors carry ``kind``): at each layer ``l``,
over the text-only read-position states,

- ``u_l = normalise(mean_harmful h_l(text) - mean_benign h_l(text))``, and
- ``r_l = mean_harmful <h_l(text), u_l>``, the text-only harmful reference level.

The ``project`` operator applies only the component of a shift along ``u_l``; ``gated`` also
stops at ``r_l`` (see :mod:`cmrm.interventions.operators`). Stored beside the shift vectors in
``shift.safetensors`` (keys ``axis.<i>``, ``axis_reference``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import IncompatibleShiftError


@dataclass(frozen=True)
class SafetyAxis:
    """One layer's safety direction (unit ``[H]``) and its text-only harmful reference level."""

    direction: Tensor
    reference: float


@dataclass(frozen=True)
class SafetyAxes:
    """Safety axes of several layers: ``directions[i]`` and ``reference[i]`` belong to ``layers[i]``."""

    layers: tuple[int, ...]
    directions: Tensor
    reference: Tensor

    def __post_init__(self) -> None:
        n = len(self.layers)
        if self.directions.ndim != 2 or self.directions.shape[0] != n:
            raise IncompatibleShiftError(
                f"safety directions must have shape [{n}, hidden], got "
                f"{tuple(self.directions.shape)}"
            )
        if tuple(self.reference.shape) != (n,):
            raise IncompatibleShiftError(
                f"safety reference must have shape [{n}], got {tuple(self.reference.shape)}"
            )
        if not (
            bool(torch.isfinite(self.directions).all())
            and bool(torch.isfinite(self.reference).all())
        ):
            raise IncompatibleShiftError(
                "safety axes contain NaN or inf; recalibrate on anchors with both harmful and "
                "benign requests"
            )

    def axis(self, layer: int) -> SafetyAxis:
        if layer not in self.layers:
            raise IncompatibleShiftError(
                f"no safety axis for layer {layer} (calibrated layers: {list(self.layers)})"
            )
        i = self.layers.index(layer)
        return SafetyAxis(self.directions[i], float(self.reference[i]))

    def select(self, layers: tuple[int, ...]) -> SafetyAxes:
        index = [self.layers.index(layer) for layer in layers]
        return SafetyAxes(tuple(layers), self.directions[index], self.reference[index])

    @classmethod
    def from_means(cls, layers: tuple[int, ...], harmful: Tensor, benign: Tensor) -> SafetyAxes:
        """From per-layer harmful and benign text-only means ``[n, H]`` (the reference is the
        harmful mean's projection, which equals the mean of the projections)."""
        diff = (harmful - benign).float()
        norms = diff.norm(dim=-1, keepdim=True)
        if bool((norms == 0).any()):
            raise IncompatibleShiftError(
                "harmful and benign anchor means coincide at some layer; no safety direction"
            )
        directions = diff / norms
        reference = (harmful.float() * directions).sum(dim=-1)
        return cls(tuple(layers), directions, reference)

    def tensors(self) -> dict[str, Tensor]:
        """The safetensors entries (``axis.<layer>`` and ``axis_reference``)."""
        out = {
            f"axis.{layer}": d.detach().float().cpu().contiguous()
            for layer, d in zip(self.layers, self.directions, strict=True)
        }
        out["axis_reference"] = self.reference.detach().float().cpu().contiguous()
        return out

    @classmethod
    def from_tensors(cls, layers: tuple[int, ...], tensors: dict[str, Tensor]) -> SafetyAxes | None:
        """The axes stored in a shift file, or None when it has none."""
        if "axis_reference" not in tensors:
            return None
        missing = [layer for layer in layers if f"axis.{layer}" not in tensors]
        if missing:
            raise IncompatibleShiftError(f"the shift file lacks safety axes for layers {missing}")
        directions = torch.stack([tensors[f"axis.{layer}"].float() for layer in layers])
        return cls(tuple(layers), directions, tensors["axis_reference"].float())
