"""Safety axes: per layer, the direction that separates harmful from benign text-only requests.

Calibrated from the same anchor pass as the shift (anchors carry ``kind``): at each layer ``l``,
over the text-only read-position states,

- ``u_l = normalise(mean_harmful h_l(text) - mean_benign h_l(text))``;
- ``r_l = mean_harmful <h_l(text), u_l>``, the text-only harmful reference level; and
- ``t_l``, the midpoint between the harmful and the benign anchors' mean projections on ``u_l``
  *with their image* (the contrast variant: null or real image), a threshold that tells, from an
  image-conditioned state, whether a request reads as harmful.

Optionally (``calibrate(..., gate=True)``), a **null-space-constrained read-out** ``w_l``
(AlphaSteer, Sheng et al., ICLR 2026, arXiv 2506.07022, with a single target direction): over the
anchors' image-conditioned states, ``w_l = argmin ||H_m P w - 1||^2 + gamma ||P w||^2`` where
``P = I - U U^T`` projects onto the null space of the benign states ``H_b`` (``U``: their
principal directions with eigenvalue above ``1e-4`` of the largest), so that ``<w_l, h> = 0`` on
every benign anchor state and ``~1`` on the harmful ones (see :func:`fit_gate`). AlphaSteer's
steering matrix with one refusal target ``v`` is the rank-one ``Delta = v w^T``, which is what
the ``alphasteer`` operator applies.

The ``project`` operator applies only the component of a shift along ``u_l``; ``gated`` also
stops at ``r_l``; ``conditional`` steers only rows above ``t_l`` (see
:mod:`cmrm.interventions.operators`). Stored beside the shift vectors in ``shift.safetensors``
(keys ``axis.<i>``, ``axis_reference``, ``axis_threshold``, ``axis_gate``; files without a
threshold or a gate load with none).
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
    gate: Tensor | None = None
    """``[H]``: the null-space-constrained read-out ``w`` (≈0 on benign states), or None."""


@dataclass(frozen=True)
class SafetyAxes:
    """Safety axes of several layers: ``directions[i]`` and ``reference[i]`` belong to ``layers[i]``."""

    layers: tuple[int, ...]
    directions: Tensor
    reference: Tensor
    threshold: Tensor | None = None
    """``[n]``: the harmful/benign midpoint of image-conditioned anchor projections, or None."""
    gate: Tensor | None = None
    """``[n, H]``: the null-space-constrained read-outs (see :func:`fit_gate`), or None."""

    def __post_init__(self) -> None:
        n = len(self.layers)
        if self.gate is not None and tuple(self.gate.shape) != tuple(self.directions.shape):
            raise IncompatibleShiftError(
                f"safety gate must have shape {list(self.directions.shape)} (one read-out per "
                f"layer, like the directions), got {list(self.gate.shape)}"
            )
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
        gate = None if self.gate is None else self.gate[i]
        return SafetyAxis(self.directions[i], float(self.reference[i]), threshold, gate)

    def select(self, layers: tuple[int, ...]) -> SafetyAxes:
        index = [self.layers.index(layer) for layer in layers]
        threshold = None if self.threshold is None else self.threshold[index]
        gate = None if self.gate is None else self.gate[index]
        return SafetyAxes(
            tuple(layers), self.directions[index], self.reference[index], threshold, gate
        )

    def with_gate(self, gate: Tensor) -> SafetyAxes:
        return SafetyAxes(self.layers, self.directions, self.reference, self.threshold, gate)

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
        if self.gate is not None:
            out["axis_gate"] = self.gate.detach().float().cpu().contiguous()
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
        gate = tensors.get("axis_gate")
        return cls(
            tuple(layers),
            directions,
            tensors["axis_reference"].float(),
            None if threshold is None else threshold.float(),
            None if gate is None else gate.float(),
        )


NULL_SPACE_EIGEN = 1e-4
"""Benign principal directions with eigenvalue above this fraction of the largest span the
space the gate must vanish on."""
GATE_RIDGE = 1e-2
"""The ridge ``gamma`` as a fraction of the mean eigenvalue of the projected harmful states."""


def fit_gate(harmful: Tensor, benign: Tensor) -> Tensor:
    """The null-space-constrained read-out ``w [H]`` from harmful and benign states
    ``[N_h, H]``, ``[N_b, H]`` (float64 inside): ``<w, h_b> = 0`` for every benign row up to
    the dropped eigenvalues, and ``<w, h_m> ~ 1`` on the harmful rows (ridge regression).

    Example:
        >>> b = torch.eye(4)[:2]; m = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 1]])
        >>> w = fit_gate(m, b); [round(float(x), 3) for x in (b @ w)]
        [0.0, 0.0]
    """
    hb, hm = benign.double(), harmful.double()
    size = hb.shape[1]
    _, s, vh = torch.linalg.svd(hb, full_matrices=False)
    keep = s**2 > NULL_SPACE_EIGEN * float((s**2).max()) if s.numel() else s.bool()
    basis = vh[keep]  # [k, H] benign principal directions
    projector = torch.eye(size, dtype=torch.float64) - basis.T @ basis
    x = hm @ projector
    gram = x.T @ x
    gamma = GATE_RIDGE * float(torch.trace(gram)) / size + 1e-12
    w: Tensor = torch.linalg.solve(
        gram + gamma * torch.eye(size, dtype=torch.float64),
        x.T @ torch.ones(len(hm), dtype=torch.float64),
    )
    gate: Tensor = (projector @ w).float()
    return gate
