"""A dataset-level shift as a llama.cpp control vector (GGUF), written with the ``gguf`` package.

The layout llama.cpp loads (``--control-vector FILE``, ``--control-vector-scaled FILE:SCALE``):
``general.architecture = "controlvector"``, ``controlvector.model_hint`` (a string naming the model
family), ``controlvector.layer_count``, and one F32 1-D tensor ``direction.<i>`` of length
``n_embd`` per layer. llama.cpp adds ``direction.i`` to the residual output of its layer ``i``,
the output of HF decoder layer ``i`` (0-based) — the same index as cmrm's hooks — so the values
written are ``alpha * v_i`` under the same names. A file with ``direction.0`` is rejected as a
whole by llama.cpp (index 0 cannot be expressed), which then keeps serving *unsteered* after one
log line; so layer 0 is refused here unless the caller drops it knowingly.

A control vector is process-wide: it applies to every position of every request, text-only
requests included — not what ``positions="text"`` or "rows without an image are never shifted"
mean under ``cmrm serve``.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import torch

from ..base.atomic import atomic_path
from ..base.errors import CmrmError
from ..calibration.shift import ShiftVectors

logger = logging.getLogger(__name__)

ARCH = "controlvector"


@dataclass(frozen=True)
class ControlVectorFile:
    """What :func:`write_control_vector` wrote."""

    path: Path
    layers: tuple[int, ...]
    alpha: float
    model_hint: str
    dropped_layer0_fraction: float | None
    """``||v_0|| / ||V||`` (``||V||`` the norm of all layers' vectors together) when layer 0 was
    dropped; None when the shift had no layer 0."""


def layer0_fraction(shift: ShiftVectors) -> float:
    """The fraction of the shift's norm that sits in layer 0: ``||v_0|| / ||V||``."""
    total = float(torch.linalg.vector_norm(shift.vectors.double()))
    return float(shift.vector(0).double().norm()) / total if total > 0 else 0.0


def write_control_vector(
    shift: ShiftVectors,
    path: str | Path,
    *,
    alpha: float = 1.0,
    model_hint: str,
    drop_layer0: bool = False,
) -> ControlVectorFile:
    """Write ``alpha * v_i`` as ``direction.<i>`` for every layer ``i`` of ``shift`` (atomically).

    Args:
        model_hint: the text decoder's family as llama.cpp names it (e.g. ``llama``).
        drop_layer0: leave layer 0 out (llama.cpp cannot express it) with a warning naming the
            fraction of the shift's norm that is lost; without it, a shift with layer 0 is refused.

    Raises:
        CmrmError: layer 0 present without ``drop_layer0``, or nothing left to write.
    """
    path = Path(path)
    dropped: float | None = None
    layers = shift.layers
    if 0 in layers:
        dropped = layer0_fraction(shift)
        if not drop_layer0:
            raise CmrmError(
                f"the shift has layer 0 ({dropped:.1%} of its norm), which a llama.cpp control "
                "vector cannot express: llama.cpp rejects a file with direction.0 as a whole and "
                "keeps serving unsteered. Pass --drop-layer0 to write the other layers, or "
                "calibrate without layer 0 (--layers 1:N)"
            )
        layers = tuple(layer for layer in layers if layer != 0)
        if not layers:
            raise CmrmError("the shift has only layer 0, which a control vector cannot express")
        logger.warning(
            "dropped layer 0 from the control vector: %.1f%% of the shift's norm "
            "(||v_0|| / ||V||) is not applied by llama.cpp",
            100 * dropped,
        )
    writer_path = path
    with atomic_path(writer_path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch=ARCH)
        writer.add_string(f"{ARCH}.model_hint", model_hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(layers))
        meta = shift.meta
        writer.add_float32("cmrm.alpha", float(alpha))
        writer.add_string("cmrm.source_model", meta.source_model)
        writer.add_string("cmrm.estimator", meta.estimator)
        writer.add_string("cmrm.anchor_hash", meta.anchor_hash)
        for layer in layers:
            values = (float(alpha) * shift.vector(layer).to(torch.float32)).numpy()
            writer.add_tensor(f"direction.{layer}", np.ascontiguousarray(values, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return ControlVectorFile(path, layers, float(alpha), model_hint, dropped)


def llama_cpp_commands(path: str | Path) -> list[str]:
    """The command lines that load ``path`` into llama.cpp with a converted VLM and projector."""
    vector = shlex.quote(str(path))
    model = "MODEL.gguf --mmproj MMPROJ.gguf"
    return [
        f"llama-server -m {model} --control-vector {vector}",
        f'llama-mtmd-cli -m {model} --control-vector {vector} --image IMAGE.png -p "PROMPT"',
    ]
