"""``steer()``: the one way cmrm changes a model.

For every selected decoder layer ``l`` and every selected position, the layer's output ``h_l``
becomes ``operator(h_l, alpha * v_l)`` — ``h_l + alpha * v_l`` for the paper's ``add``; the other
operators are in :mod:`cmrm.interventions.operators` — in the prefill and in every decoding step. Dataset-level shifts
(:class:`ShiftVectors`) use one vector per layer for the whole batch; sample-level shifts
(:class:`SampleShift`) one vector per layer per row. Rows without an image are never shifted.

How positions stay right under the KV cache: a forward pre-hook on the top-level model sees every
call's ``input_ids`` and where the call starts (``cache_position`` or the cache length). A call
starting at 0 is a new prompt, and its :class:`~cmrm.models.positions.PromptLayout` is recorded; later
calls are positions after it. The layer hooks ask the layout which positions of the call to shift.

Everything is validated before a single hook is registered; the hooks are owned by one
:class:`~cmrm.models.hooks.HookSet` and removed on exit, on exception, and if registration fails.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..base.errors import CmrmError, IncompatibleShiftError
from ..base.validation import check_alpha
from ..calibration.axes import SafetyAxes, SafetyAxis
from ..calibration.shift import SampleShift, ShiftVectors
from ..models.hooks import HookSet, hidden_of, with_hidden
from ..models.names import Positions
from ..models.positions import PromptLayout, check_positions, expand_rows
from ..models.vlm import VLM
from .operators import Operator, get_operator
from .operators.base import keep


@dataclass(frozen=True)
class CallPlan:
    """What every steered layer of one call shares, on one device: the position mask, whether it
    selects anything, and whether it selects everything (then no ``torch.where`` is needed)."""

    batch: int
    length: int
    mask: Tensor
    active: bool
    full: bool


@dataclass
class SteeringState:
    """Mutable per-context state shared by the hooks (the handle yielded by :func:`steer`)."""

    layout: PromptLayout | None = None
    start: int = 0
    calls: int = 0
    gates: dict[int, tuple[Tensor, bool, bool]] = field(default_factory=dict)
    """Per layer, the rows a gating operator steers (decided in the prefill), and whether that is
    every row / no row."""
    plans: dict[torch.device, CallPlan] = field(default_factory=dict)
    """The current call's :class:`CallPlan` on each device: the same for every steered layer of a
    call, so it is built once per call, not once per layer."""


def _call_start(kwargs: dict[str, Any], input_ids: Tensor) -> int:
    """Absolute position of the call's first token: from ``cache_position``, the KV cache's
    length (``cache`` in transformers 5, ``past_key_values`` in 4.x), or the attention mask's
    extra length; 0 for a call without a cache."""
    cache_position = kwargs.get("cache_position")
    if isinstance(cache_position, Tensor) and cache_position.numel():
        return int(cache_position.reshape(-1)[0])
    for name in ("cache", "past_key_values", "past_key_value"):
        cache = kwargs.get(name)
        if cache is not None and hasattr(cache, "get_seq_length"):
            return int(cache.get_seq_length())
    mask = kwargs.get("attention_mask")
    if isinstance(mask, Tensor) and mask.ndim == 2 and mask.shape[1] > input_ids.shape[1]:
        return int(mask.shape[1] - input_ids.shape[1])
    return 0


def _operator_and_axes(
    operator: str | Operator, axes: SafetyAxes | None, chosen: tuple[int, ...]
) -> tuple[Operator, SafetyAxes | None]:
    op = get_operator(operator) if isinstance(operator, str) else operator
    if not op.needs_axis:
        return op, None
    if axes is None:
        raise IncompatibleShiftError(
            f"operator {op.name!r} needs safety axes (the harmful-minus-benign direction of "
            "text-only anchor states), and none were given: calibrate with `cmrm calibrate` on "
            "anchors that carry kind harmful and benign, and use that shift"
        )
    missing = [layer for layer in chosen if layer not in axes.layers]
    if missing:
        raise IncompatibleShiftError(
            f"operator {op.name!r}: no safety axis for layers {missing} "
            f"(the axes cover {list(axes.layers)})"
        )
    if getattr(op, "needs_gate", False) and axes.gate is None:
        raise IncompatibleShiftError(
            f"operator {op.name!r} needs the safety axes' gate (a null-space-constrained "
            "read-out), which this shift lacks: calibrate with `cmrm calibrate --gate` (or "
            "`calibrate(..., gate=True)`) on anchors of both kinds"
        )
    if op.gates and axes.threshold is None:
        raise IncompatibleShiftError(
            f"operator {op.name!r} needs the safety axes' threshold, which this shift lacks "
            "(calibrated by an earlier cmrm): recalibrate it with `cmrm calibrate`"
        )
    return op, axes


def _validate(
    vlm: VLM, shift: ShiftVectors | SampleShift, alpha: float, layers: Any, positions: str
) -> tuple[Positions, tuple[int, ...]]:
    check_alpha(alpha)
    pos = check_positions(positions)
    if not isinstance(shift, ShiftVectors | SampleShift):
        raise CmrmError(
            f"shift must be ShiftVectors (dataset-level) or SampleShift (sample-level), "
            f"got {type(shift).__name__}"
        )
    if isinstance(shift, ShiftVectors):
        shift.check_compatible(vlm.model_type, vlm.hidden_size, vlm.num_layers)
    elif shift.vectors.shape[-1] != vlm.hidden_size:
        raise IncompatibleShiftError(
            f"sample shift has width {shift.vectors.shape[-1]}, the model {vlm.hidden_size}"
        )
    chosen = shift.layers if layers in (None, "all") else vlm.layers.resolve(layers)
    missing = [layer for layer in chosen if layer not in shift.layers]
    if missing:
        raise IncompatibleShiftError(
            f"layers {missing} were requested but the shift only has {list(shift.layers)}"
        )
    return pos, tuple(chosen)


@contextmanager
def steer(
    vlm: VLM,
    shift: ShiftVectors | SampleShift,
    *,
    alpha: float = 1.0,
    layers: str | int | Sequence[int] | None = "all",
    positions: str = "all",
    generated: bool = True,
    operator: str | Operator = "add",
    axes: SafetyAxes | None = None,
) -> Iterator[SteeringState]:
    """Apply CMRM inside a ``with`` block.

    Args:
        vlm: the model (from :func:`cmrm.load_vlm` or :func:`cmrm.from_model`).
        shift: dataset-level :class:`ShiftVectors` or per-row :class:`SampleShift`.
        alpha: scale; 0 is the identity, 1 the paper's full shift toward text-only.
        layers: ``"all"`` (every layer the shift has), an index, a list, or ``"8:16"``.
        positions: ``"all"``, ``"text"`` or ``"last"`` (see :mod:`cmrm.models.positions`).
        generated: also shift generated tokens (the method as published); False shifts the
            prompt positions only, a diagnostic.
        operator: ``add`` (the paper), ``project``, ``norm-preserving`` or ``gated``.
        axes: safety axes for ``project``/``gated``; default: the dataset-level shift's own.

    Example:
        >>> with steer(vlm, ShiftVectors.load("shift/"), alpha=1.0) as state:
        ...     out = vlm.model.generate(**vlm.encode(["q"], [img]).inputs, max_new_tokens=32)

    Raises:
        CmrmError / IncompatibleShiftError: before any hook is registered.
    """
    pos, chosen = _validate(vlm, shift, float(alpha), layers, positions)
    if axes is None and isinstance(shift, ShiftVectors):
        axes = shift.axes
    op, axes = _operator_and_axes(operator, axes, chosen)
    state = SteeringState()
    image_ids = torch.tensor(sorted(vlm.image_token_ids))
    zero = float(alpha) == 0
    bind = getattr(op, "bind", None)

    def on_call(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if not isinstance(input_ids, Tensor):
            raise CmrmError(
                "steer needs input_ids in every forward call (inputs_embeds alone "
                "hides where the images are)"
            )
        start = _call_start(kwargs, input_ids)
        layout = state.layout
        if start == 0 and not (layout is not None and layout.continues(input_ids)):
            state.layout = PromptLayout.from_inputs(
                input_ids, kwargs.get("attention_mask"), image_ids
            )
        elif layout is None:
            raise CmrmError(
                f"steer saw a call starting at position {start} without its prompt; "
                "enter the steer block before the prefill"
            )
        state.start, state.calls, state.plans = start, state.calls + 1, {}

    def plan_for(hidden: Tensor) -> CallPlan:
        """The current call's plan on ``hidden``'s device (built by its first steered layer)."""
        layout = state.layout
        if layout is None:
            raise CmrmError(
                "a steered decoder layer ran outside a call of the whole model; "
                "call vlm.model (or generate) so steer can see the prompt"
            )
        batch, length = int(hidden.shape[0]), int(hidden.shape[1])
        mask = layout.mask(pos, state.start, length, batch, generated).to(hidden.device)
        if state.start >= layout.length:  # generated tokens only: the rows decide, no sync
            active = generated and layout.any_image
            full = active and layout.all_images
        else:
            active, full = bool(mask.any()), bool(mask.all())
        plan = CallPlan(batch, length, mask, active, full)
        state.plans[hidden.device] = plan
        return plan

    def row_gate(index: int, hidden: Tensor, axis: SafetyAxis) -> tuple[Tensor, bool, bool]:
        """Rows whose pre-steer state at the last prompt token reads as harmful (decided when the
        call covers that token, i.e. in the prefill; kept for the generated tokens), and whether
        that is every row / no row."""
        assert state.layout is not None
        last = state.layout.length - 1
        if state.start <= last < state.start + int(hidden.shape[1]):
            row = hidden[:, last - state.start].float()
            u = axis.direction.to(row.device, torch.float32)
            gate = (row @ u) > float(axis.threshold or 0.0)
            state.gates[index] = (gate, bool(gate.all()), not bool(gate.any()))
        if index not in state.gates:
            raise CmrmError(
                f"operator {op.name!r} decides in the prefill which rows to steer; enter the "
                "steer block before the prompt is run"
            )
        gate, every, none = state.gates[index]
        return expand_rows(gate, int(hidden.shape[0]), "row gate"), every, none

    def make_hook(index: int) -> Any:
        axis = axes.axis(index) if axes is not None else None
        v = shift.vectors[shift.layers.index(index)]
        deltas: dict[tuple[int, torch.device, torch.dtype], Tensor] = {}
        bound: dict[tuple[int, torch.device, torch.dtype], Any] = {}

        def delta_for(hidden: Tensor, key: tuple[int, torch.device, torch.dtype]) -> Tensor:
            """``alpha * v_l`` on ``hidden``'s device and dtype, one row per batch row."""
            if key not in deltas:
                d = (float(alpha) * v.to(torch.float32)).to(hidden.device, hidden.dtype)
                deltas[key] = (
                    d.expand(key[0], -1) if d.ndim == 1 else expand_rows(d, key[0], "sample shift")
                )
            return deltas[key]

        def shift_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            hidden = output if isinstance(output, Tensor) else hidden_of(output)
            plan = state.plans.get(hidden.device)
            if plan is None or plan.batch != hidden.shape[0] or plan.length != hidden.shape[1]:
                plan = plan_for(hidden)
            if zero or not plan.active:
                return output
            mask, full = plan.mask, plan.full
            if op.gates:
                assert axis is not None  # checked before any hook
                gate, every, none = row_gate(index, hidden, axis)
                if none:
                    return output
                if not every:
                    mask, full = mask & gate[:, None], False
            key = (plan.batch, hidden.device, hidden.dtype)
            if bind is None:  # an operator without bind(): the mask goes in, as always
                new = op(hidden, delta_for(hidden, key), mask, axis)
            else:
                fn = bound.get(key)
                if fn is None:
                    fn = bound[key] = bind(delta_for(hidden, key), axis, hidden)
                new = fn(hidden)
                if not full:
                    new = keep(hidden, new, mask)
                elif new.dtype != hidden.dtype:  # a dispatch saved per layer and step when equal
                    new = new.to(hidden.dtype)
            return new if isinstance(output, Tensor) else with_hidden(output, new)

        return shift_hook

    with HookSet() as hooks:
        hooks.forward_pre(vlm.model, on_call)
        for index in chosen:
            hooks.forward(vlm.layers.modules[index], make_hook(index))
        yield state
