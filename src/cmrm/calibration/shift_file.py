"""Checks of a shift directory read from disk, before any tensor is used.

A shift file is only as good as the agreement between ``shift.json`` and ``shift.safetensors``:
the metadata says how wide the model is (``hidden_size``) and which layers were calibrated, so
every tensor's shape is implied by it:

- ``layers.<l>`` and ``axis.<l>`` (a layer vector, a safety axis): ``[hidden_size]``;
- ``axis_reference`` and ``axis_threshold`` (per-layer scalars): ``[number of layers]``.

A tensor of another shape, or one the format does not know, is an
:class:`~cmrm.base.errors.IncompatibleShiftError` naming the file, the tensor, the shape found
and the shape expected (one line, no traceback at the CLI).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..base.errors import IncompatibleShiftError

if TYPE_CHECKING:
    from torch import Tensor


class _Meta(Protocol):
    """What the checks read of :class:`cmrm.calibration.shift.ShiftMeta` (a protocol, so that
    this module, which ``shift`` imports, does not import it back)."""

    @property
    def hidden_size(self) -> Any: ...
    @property
    def num_layers(self) -> Any: ...
    @property
    def recommended(self) -> Any: ...


_PER_LAYER_VECTOR = re.compile(r"(layers|axis)\.(\d+)")
_PER_LAYER_SCALARS = ("axis_reference", "axis_threshold")
_FIX = "the file was damaged or edited; restore it or recalibrate with `cmrm calibrate`"


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_meta(path: Path, meta: _Meta, layers: tuple[int, ...]) -> None:
    """The sizes in ``shift.json`` are positive whole numbers and the layer list is not empty.

    Raises:
        IncompatibleShiftError: naming the file, the field, the value found and what is expected.
    """
    for name in ("hidden_size", "num_layers"):
        value = getattr(meta, name)
        if not _positive_int(value):
            raise IncompatibleShiftError(
                f"{path}: {name!r} is {value!r}, expected a positive whole number; {_FIX}"
            )
    if not layers:
        raise IncompatibleShiftError(f"{path}: 'layers' is empty, expected layer indices; {_FIX}")
    check_recommended(path, meta.recommended)


_REC_TEXT = ("operator", "positions", "source", "null", "contrast")


def check_recommended(path: Path, rec: object) -> None:
    """``recommended`` (written by ``cmrm tune``) is null or an object with a finite numeric
    ``alpha`` and text settings; the names themselves are checked where they are used.

    Raises:
        IncompatibleShiftError: naming the file, the field, the value found and what is expected.
    """
    if rec is None:
        return
    fix = 're-run `cmrm tune`, or set "recommended": null and pass --alpha/--operator'
    if not isinstance(rec, Mapping):
        raise IncompatibleShiftError(
            f"{path}: 'recommended' is {rec!r}, expected an object as `cmrm tune` writes it; {fix}"
        )
    alpha = rec.get("alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha):
        raise IncompatibleShiftError(
            f"{path}: 'recommended.alpha' is {alpha!r}, expected a finite number; {fix}"
        )
    for key in _REC_TEXT:
        if key in rec and not isinstance(rec[key], str):
            raise IncompatibleShiftError(
                f"{path}: 'recommended.{key}' is {rec[key]!r}, expected a name (text); {fix}"
            )
    layers = rec.get("layers")
    if layers is not None and not isinstance(layers, str | int | list):
        raise IncompatibleShiftError(
            f"{path}: 'recommended.layers' is {layers!r}, expected null, 'all', '8:16' or a "
            f"list of layer indices; {fix}"
        )


def abstain_message(where: object, rec: Mapping[str, Any], operator: str, verb: str) -> str | None:
    """What to tell a user whose ``--shift DIR`` holds a tune that recommends no intervention
    (``"abstain": true``); None for any other recommendation. ``verb``: "apply" or "evaluate"."""
    if not rec.get("abstain"):
        return None
    found = rec.get("closest")
    closest: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    return (
        f"tune's recommendation in {where} is NO intervention: no setting it tried met its "
        f"constraints, so {operator} runs at alpha 0 (the identity). The closest setting was "
        f"{closest.get('key', '?')}; pass --alpha {closest.get('alpha', 'A')} --operator "
        f"{operator} to {verb} it anyway"
    )


def expected_shape(key: str, layers: tuple[int, ...], hidden_size: int) -> tuple[int, ...] | None:
    """The shape ``shift.json`` implies for tensor ``key``; None for a key the format lacks."""
    if _PER_LAYER_VECTOR.fullmatch(key):
        return (hidden_size,)
    if key in _PER_LAYER_SCALARS:
        return (len(layers),)
    if key == "axis_gate":  # alphasteer's read-out: one row per layer
        return (len(layers), hidden_size)
    return None


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def check_tensor_shapes(
    path: Path, tensors: Mapping[str, Tensor], layers: tuple[int, ...], hidden_size: int
) -> None:
    """Every tensor of a shift file has the shape its metadata implies.

    Raises:
        IncompatibleShiftError: the first tensor of a wrong shape (or an unknown one), as
            ``FILE: tensor 'layers.3' has shape [127], expected [128] (...)``.
    """
    for key in sorted(tensors):
        found = tuple(int(n) for n in tensors[key].shape)
        expected = expected_shape(key, layers, hidden_size)
        if expected is None:
            raise IncompatibleShiftError(
                f"{path}: unknown tensor {key!r} (shape {_shape(found)}); a shift file holds "
                f"layers.<i>, axis.<i>, axis_reference, axis_threshold and axis_gate; {_FIX}"
            )
        if found != expected:
            if key == "axis_gate":
                why = f"{len(layers)} layers x hidden_size {hidden_size} in shift.json"
            elif _PER_LAYER_VECTOR.fullmatch(key):
                why = f"hidden_size {hidden_size} in shift.json"
            else:
                why = f"one value per layer, {len(layers)} layers in shift.json"
            raise IncompatibleShiftError(
                f"{path}: tensor {key!r} has shape {_shape(found)}, expected "
                f"{_shape(expected)} ({why}); {_FIX}"
            )
