"""Safety axes: per layer, the direction that separates harmful from benign text-only requests.

Calibrated from the same anchor pass as the shift (anchors carry ``kind``): at each layer ``l``,
over the text-only read-position states,

- ``u_l = normalise(mean_harmful h_l(text) - mean_benign h_l(text))``;
- ``r_l = mean_harmful <h_l(text), u_l>``, the text-only harmful reference level; and
- ``t_l``, the midpoint between the harmful and the benign anchors' mean projections on ``u_l``
  *with their image* (the contrast variant: null or real image), a threshold that tells, from an
  image-conditioned state, whether a request reads as harmful.

The ``project`` operator applies only the component of a shift along ``u_l``; ``gated`` also
stops at ``r_l``; ``conditional`` steers only rows above ``t_l`` (see
:mod:`cmrm.interventions.operators`). Stored beside the shift vectors in ``shift.safetensors``
(keys ``axis.<i>``, ``axis_reference``, ``axis_threshold``; files without a threshold load with
none).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..base.errors import IncompatibleShiftError


@dataclass(frozen=True)
class SafetyAxis:
    """One layer's safety direction (unit ``[H]``) and its text-only harmful reference level."""

    direction: Tensor
    reference: float
    threshold: float | None = None


@dataclass(frozen=True)
class SafetyAxes:
    """Safety axes of several layers: ``directions[i]`` and ``reference[i]`` belong to ``layers[i]``."""

    layers: tuple[int, ...]
    directions: Tensor
    reference: Tensor
    threshold: Tensor | None = None
    """``[n]``: the harmful/benign midpoint of image-conditioned anchor projections, or None."""

    def __post_init__(self) -> None:
        n = len(self.layers)
        if self.threshold is not None and tuple(self.threshold.shape) != (n,):
            raise IncompatibleShiftError(
                f"safety threshold must have shape [{n}], got {tuple(self.threshold.shape)}"
            )
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
        threshold = None if self.threshold is None else float(self.threshold[i])
        return SafetyAxis(self.directions[i], float(self.reference[i]), threshold)

    def select(self, layers: tuple[int, ...]) -> SafetyAxes:
        index = [self.layers.index(layer) for layer in layers]
        threshold = None if self.threshold is None else self.threshold[index]
        return SafetyAxes(tuple(layers), self.directions[index], self.reference[index], threshold)

    @classmethod
    def from_means(
        cls,
        layers: tuple[int, ...],
        harmful: Tensor,
        benign: Tensor,
        harmful_image: Tensor | None = None,
        benign_image: Tensor | None = None,
    ) -> SafetyAxes:
        """From per-layer harmful and benign text-only means ``[n, H]`` (the reference is the
        harmful mean's projection, which equals the mean of the projections), and, when given,
        the same anchors' means with their image (for the threshold)."""
        diff = (harmful - benign).float()
        norms = diff.norm(dim=-1, keepdim=True)
        if bool((norms == 0).any()):
            raise IncompatibleShiftError(
                "harmful and benign anchor means coincide at some layer; no safety direction"
            )
        directions = diff / norms
        reference = (harmful.float() * directions).sum(dim=-1)
        threshold = None
        if harmful_image is not None and benign_image is not None:
            mid = (harmful_image.float() + benign_image.float()) / 2
            threshold = (mid * directions).sum(dim=-1)
        return cls(tuple(layers), directions, reference, threshold)

    def tensors(self) -> dict[str, Tensor]:
        """The safetensors entries (``axis.<layer>`` and ``axis_reference``)."""
        out = {
            f"axis.{layer}": d.detach().float().cpu().contiguous()
            for layer, d in zip(self.layers, self.directions, strict=True)
        }
        out["axis_reference"] = self.reference.detach().float().cpu().contiguous()
        if self.threshold is not None:
            out["axis_threshold"] = self.threshold.detach().float().cpu().contiguous()
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
        threshold = tensors.get("axis_threshold")
        return cls(
            tuple(layers),
            directions,
            tensors["axis_reference"].float(),
            None if threshold is None else threshold.float(),
        )
