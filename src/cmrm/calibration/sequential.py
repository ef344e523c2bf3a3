"""Sequential calibration: each layer's vector measured with the earlier layers already steered.

An independent estimate measures every layer's shift on *unsteered* inputs. Applied at every
layer, the shifts then compound: once layer 0 is steered, layer 1's input has moved already and
its vector overshoots, and so on (on the organism the steered states ended up *further* from
text-only than before). Here, for each chosen layer ``l`` in order,

    v_l = mean_i [ h_l(text_i) - h_l(contrast_i | layers < l steered with v at alpha) ]

so that at the calibration alpha (``add``, the calibration positions) the mean steered
read-position state equals the mean text-only state at *every* layer — by construction for
``mean``. Text-only rows are never steered, so their states come from the one unsteered pass.

**Cost: O(layers).** The decoder runs once, layer by layer, over every anchor batch at once: one
ordinary forward pass per batch records what each decoder layer is called with (the input of
the first layer; the masks and position embeddings every layer receives, which do not depend on
the hidden states), and then layer ``l`` is applied to every batch's carried states, layer
``l``'s vector is measured from them (reduced across ranks), added to them (``add`` at the
calibration positions, exactly as :func:`cmrm.steer` adds it) and the states move on to layer
``l + 1``. Memory: the anchors' states at one layer (anchors x tokens x hidden), plus the
per-batch layer arguments, while they fit ``carry_budget`` (default 1 GiB); beyond it each
batch is kept on disk between layers and read back in its turn
(:class:`cmrm.calibration.spill.CarryStore`), so memory holds one batch whatever the anchor
count. The steering of layer ``l``'s vector is applied to each batch when it is read back for
layer ``l + 1``: the same operations in the same order as applying it at once. The recording
pass runs the layers up to the first chosen one and passes the later ones through (their arguments do not depend on the hidden states), so the whole
costs about two forward passes of the contrast variant besides the text-only pass. The first
chosen layer's states are checked against the ordinary pass, so a family whose decoder does more
between layers than call them in turn fails loudly instead of calibrating wrongly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..base.distributed import SINGLE, World
from ..base.errors import CmrmError
from ..data.images import NullImage, load_image
from ..data.items import Item
from ..models.hooks import HookSet, hidden_of
from ..models.positions import PromptLayout, check_positions
from ..models.vlm import VLM, Batch
from .capture import reduce_states
from .contrast import contrast_images, pc1_vector
from .names import ReadPosition
from .reduction import Partial, reduce_partial, shard_batches
from .spill import DEFAULT_BUDGET, CarryStore, tensor_bytes

logger = logging.getLogger(__name__)


class _Recorded(Exception):
    """Raised by the deepest layer's pre-hook: the layer arguments are all recorded."""


@dataclass
class _Carried:
    """One anchor batch on its way through the decoder."""

    start: int
    batch: Batch
    hidden: Tensor
    """The batch's states at the current layer's input (steered at the finished layers)."""
    calls: list[tuple[bool, tuple[Any, ...], dict[str, Any]]]
    """Per layer up to the deepest chosen one: whether the hidden states came positionally, and
    the other arguments."""
    mask: Tensor
    """``[B, T]`` positions the calibration steers (as :func:`cmrm.steer` would)."""
    first: Tensor
    """The first chosen layer's read states in the ordinary pass (the check)."""


def _split(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Tensor, bool, tuple[Any, ...]]:
    """The hidden states a layer is called with, whether they came positionally, the rest."""
    if args and isinstance(args[0], Tensor):
        return args[0], True, args[1:]
    hidden = kwargs.get("hidden_states")
    if not isinstance(hidden, Tensor):
        raise CmrmError(
            "sequential calibration could not find the hidden states a decoder layer is called "
            "with (neither the first positional argument nor `hidden_states=`)"
        )
    return hidden, False, args


def _record(vlm: VLM, batch: Batch, deepest: int, first: int, read: ReadPosition) -> _Carried:
    """One ordinary pass that stops at the deepest layer: its first input, every layer's other
    arguments, and the first chosen layer's read states.

    The layers after the first chosen one are passed through in this pass (their arguments do
    not depend on the hidden states, and their outputs are recomputed layer by layer), so it
    costs the embeddings, the vision tower and the layers up to the first chosen one.
    """
    calls: list[tuple[bool, tuple[Any, ...], dict[str, Any]]] = []
    found: dict[str, Any] = {}

    def pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        index = len(calls)
        hidden, positional, rest = _split(args, kwargs)
        if index == 0:
            found["input"] = hidden
        calls.append((positional, rest, {k: v for k, v in kwargs.items() if k != "hidden_states"}))
        if index == deepest:
            raise _Recorded

    def first_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        found["first"] = reduce_states(hidden_of(output), batch, read).detach().cpu()
        found["bare"] = isinstance(output, Tensor)  # transformers 5: a bare tensor

    def passthrough(layer: nn.Module) -> Any:
        original = layer.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            if found.get("bare"):
                return _split(args, kwargs)[0]
            return original(*args, **kwargs)

        return forward

    skipped = list(vlm.layers.modules[first + 1 : deepest])
    with HookSet() as hooks:
        for module in vlm.layers.modules[: deepest + 1]:
            hooks.forward_pre(module, pre_hook)
        hooks.forward(vlm.layers.modules[first], first_hook)
        try:
            for layer in skipped:
                layer.forward = passthrough(layer)
            with torch.inference_mode():
                vlm.model(**batch.inputs, use_cache=False)
        except _Recorded:
            pass
        finally:
            for layer in skipped:
                del layer.forward
    if len(calls) != deepest + 1 or ("first" not in found and first < deepest):
        raise CmrmError(
            f"sequential calibration saw {len(calls)} decoder-layer calls before layer {deepest}; "
            "this family's decoder does not call its layers once each in order"
        )
    return _Carried(
        start=0,
        batch=batch,
        hidden=found["input"],
        calls=calls,
        mask=torch.zeros(0, dtype=torch.bool),
        first=found.get("first", torch.zeros(0)),
    )


def _step(vlm: VLM, index: int, carried: _Carried) -> Tensor:
    """Layer ``index`` applied to the batch's carried states, with its recorded arguments."""
    positional, args, kwargs = carried.calls[index]
    layer = vlm.layers.modules[index]
    with torch.inference_mode():
        if positional:
            out = layer(carried.hidden, *args, **kwargs)
        else:
            out = layer(*args, hidden_states=carried.hidden, **kwargs)
    return hidden_of(out)


def _add(hidden: Tensor, vector: Tensor, alpha: float, mask: Tensor) -> Tensor:
    """``h + alpha * v`` at ``mask``, in the arithmetic :func:`cmrm.steer`'s ``add`` uses."""
    delta = (float(alpha) * vector.to(torch.float32)).to(hidden.device, hidden.dtype)
    moved = hidden + delta.expand(int(hidden.shape[0]), -1)[:, None, :]
    return torch.where(mask.to(hidden.device)[..., None], moved.to(hidden.dtype), hidden)


def _light(batch: Batch) -> Batch:
    """What the read positions need of a batch (no image inputs)."""
    keep = ("input_ids", "attention_mask")
    inputs: dict[str, Tensor] = {k: v for k, v in batch.inputs.items() if k in keep}
    return Batch(inputs=inputs, image_mask=batch.image_mask, has_image=batch.has_image)


def _value(one: _Carried) -> dict[str, Any]:
    b = one.batch
    return {
        "start": one.start,
        "batch": (b.inputs, b.image_mask, b.has_image),
        "hidden": one.hidden,
        "calls": one.calls,
        "mask": one.mask,
        "first": one.first,
    }


def _from_value(value: dict[str, Any]) -> _Carried:
    inputs, image_mask, has_image = value["batch"]
    return _Carried(
        start=value["start"],
        batch=Batch(inputs=dict(inputs), image_mask=image_mask, has_image=has_image),
        hidden=value["hidden"],
        calls=list(value["calls"]),
        mask=value["mask"],
        first=value["first"],
    )


def _carry(
    vlm: VLM,
    items: Sequence[Item],
    store: CarryStore,
    *,
    null: NullImage,
    contrast: str,
    positions: str,
    read: ReadPosition,
    layers: tuple[int, ...],
    batch_size: int,
    world: World,
) -> int:
    """Record every anchor batch into ``store`` (slots 0, 1, ...); how many there are."""
    pos = check_positions(positions)
    image_ids = torch.tensor(sorted(vlm.image_token_ids))
    deepest, first = max(layers), min(layers)
    starts = shard_batches(len(items), batch_size, world)
    for slot, start in enumerate(starts):
        chunk = items[start : start + batch_size]
        images = contrast_images(
            vlm,
            [load_image(item.image) for item in chunk],
            null,
            contrast,  # type: ignore[arg-type]
        )
        batch = vlm.encode([item.prompt for item in chunk], images)
        one = _record(vlm, batch, deepest, first, read)
        input_ids = batch.inputs["input_ids"]
        layout = PromptLayout.from_inputs(input_ids, batch.inputs.get("attention_mask"), image_ids)
        length, rows = int(one.hidden.shape[1]), int(one.hidden.shape[0])
        one.mask = layout.mask(pos, 0, length, rows, True)
        one.start = start
        one.batch = _light(batch)
        value = _value(one)
        if slot == 0:
            store.decide(tensor_bytes(value), len(starts))
        store.put(slot, value)
    return len(starts)


def _read(one: _Carried, index: int, first: int, deepest: int, read: ReadPosition) -> Tensor:
    """The batch's read states at layer ``index``; at the first chosen layer, checked against
    the ordinary pass."""
    state = reduce_states(one.hidden, one.batch, read).detach().cpu()
    if index == first < deepest and not torch.allclose(state, one.first, rtol=1e-4, atol=1e-4):
        raise CmrmError(
            f"sequential calibration: layer {index} applied on its own gives other states "
            f"than in the model's forward pass (max difference "
            f"{(state - one.first).abs().max().item():.3g}); this family's decoder does "
            "more between layers than call them in turn. Calibrate without --sequential."
        )
    return state


def sequential_vectors(
    vlm: VLM,
    items: Sequence[Item],
    text: Tensor,
    *,
    layers: tuple[int, ...],
    null: NullImage,
    contrast: str,
    estimator: str,
    read: ReadPosition,
    alpha: float,
    positions: str,
    batch_size: int,
    show_progress: bool = False,
    world: World = SINGLE,
    carry_budget: int | None = DEFAULT_BUDGET,
) -> Tensor:
    """The sequentially calibrated vectors ``[n_layers, hidden]`` (float32).

    Args:
        text: the text-only states: ``[n_layers, 1, hidden]`` means for ``mean``, or
            ``[n_layers, N, hidden]`` per anchor (in anchor order) for ``pc1``.
        world: several ranks share the anchors' batches, as in
            :func:`cmrm.calibration.estimate.calibrate`; each layer's partial is reduced across
            ranks before the next layer is measured.
        carry_budget: bytes of carried states kept in memory; beyond it they are kept on disk
            between layers (None: always in memory, 0: always on disk).
    """
    slot = {layer: i for i, layer in enumerate(layers)}
    out = torch.zeros(len(layers), vlm.hidden_size)
    deepest, first = max(layers), min(layers)
    with CarryStore(carry_budget) as store:
        count = _carry(
            vlm,
            items,
            store,
            null=null,
            contrast=contrast,
            positions=positions,
            read=read,
            layers=layers,
            batch_size=batch_size,
            world=world,
        )

        steps = tqdm(
            range(deepest + 1),
            desc="sequential calibration",
            disable=not show_progress,
            unit="layer",
        )
        pending: Tensor | None = None
        for index in steps:
            part = Partial.empty(1, vlm.hidden_size, keep=estimator == "pc1")
            for b in range(count):
                one = _from_value(store.get(b))
                if pending is not None:  # the previous chosen layer's vector, applied in turn
                    one.hidden = _add(one.hidden, pending, alpha, one.mask)
                one.hidden = _step(vlm, index, one)
                if index in slot:
                    part = part.add(one.start, _read(one, index, first, deepest, read)[None])
                store.put(b, _value(one))
            pending = None
            if index not in slot:
                continue
            part = reduce_partial(part, world)
            i = slot[index]
            if estimator == "mean":
                vector = (text[i, 0].double() - part.total[0] / max(part.count, 1)).float()
            else:
                vector = pc1_vector(text[i] - part.ordered_rows()[0])
            out[i] = vector
            if alpha != 0:
                pending = vector
    logger.info("sequential calibration over %d layers in one pass", len(layers))
    return out
