"""Record hidden states of chosen decoder layers at the read position.

The same hook machinery and the same layer indices as :func:`cmrm.interventions.steering.steer` (never
``output_hidden_states``, whose indices are off by one and whose last entry is normalised). When
entered inside a ``steer`` block, the recorded states are the steered ones: the recording hooks are
registered after the steering hooks, and forward hooks run in registration order.

Read positions:
- ``last``: the last prompt token (with left padding, the last column), whose logits produce the
  first answer token;
- ``mean``: the mean over the row's non-image, non-padding prompt tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from ..base.errors import CmrmError
from ..models.hooks import HookSet, hidden_of
from ..models.vlm import VLM, Batch
from .names import ReadPosition


def reduce_states(hidden: Tensor, batch: Batch, read: ReadPosition) -> Tensor:
    """``[B, hidden]`` float32: each row's state at the read position."""
    if read == "last":
        return hidden[:, -1, :].float()
    weights = (batch.attention_mask.bool() & ~batch.image_mask).to(hidden.device).float()
    total = weights.sum(dim=1, keepdim=True).clamp(min=1.0)
    return (hidden.float() * weights[..., None]).sum(dim=1) / total


class _Enough(Exception):
    """Raised by the last recording hook to skip the layers nobody reads (``stop_early``)."""


def capture_batch(
    vlm: VLM,
    batch: Batch,
    *,
    layers: str | int | Sequence[int] | None = None,
    read: ReadPosition = "last",
    stop_early: bool = False,
) -> Tensor:
    """Run one forward pass and return states ``[n_layers, B, hidden]`` (float32, CPU).

    ``stop_early`` ends the pass once the deepest chosen layer has run (the later layers and the
    LM head are skipped: only the recorded states are valid).
    """
    if read not in ("last", "mean"):
        raise CmrmError(f"read position must be 'last' or 'mean', got {read!r}")
    chosen = vlm.layers.resolve(layers)
    found: dict[int, Tensor] = {}
    deepest = max(chosen)

    def make_hook(index: int) -> Any:
        def record_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            found[index] = reduce_states(hidden_of(output), batch, read).detach().cpu()
            if stop_early and index == deepest:
                raise _Enough

        return record_hook

    with HookSet() as hooks:
        for index in chosen:
            hooks.forward(vlm.layers.modules[index], make_hook(index))
        with torch.inference_mode(), contextlib.suppress(_Enough):
            vlm.model(**batch.inputs, use_cache=False)
    missing = [index for index in chosen if index not in found]
    if missing:
        raise CmrmError(f"layers {missing} did not run in the forward pass")
    return torch.stack([found[index] for index in chosen])


def capture_states(
    vlm: VLM,
    prompts: Sequence[str],
    images: Sequence[Image.Image | None],
    *,
    layers: str | int | Sequence[int] | None = None,
    read: ReadPosition = "last",
    stop_early: bool = True,
) -> Tensor:
    """Encode a batch and capture its states: ``[n_layers, B, hidden]`` float32 on the CPU.

    Families that cannot mix image and text-only rows in one processor call are run in two
    passes and the rows put back in order. The pass stops after the deepest chosen layer
    (``stop_early``): the final norm and the LM head, whose logits nobody reads here, were a
    fifth of an organism-smol calibration (profiled: 24 s of 125 s).
    """
    groups = vlm.image_groups([img is not None for img in images])
    if len(groups) == 1:
        return capture_batch(
            vlm, vlm.encode(prompts, images), layers=layers, read=read, stop_early=stop_early
        )
    out: Tensor | None = None
    for rows in groups:
        states = capture_batch(
            vlm,
            vlm.encode([prompts[i] for i in rows], [images[i] for i in rows]),
            layers=layers,
            read=read,
            stop_early=stop_early,
        )
        if out is None:
            out = torch.empty(states.shape[0], len(prompts), states.shape[2])
        out[:, rows] = states
    assert out is not None
    return out
