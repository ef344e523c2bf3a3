"""Invariants of steering: identity at alpha 0, exact deltas, positions under the KV cache,
sample-level sign, hook hygiene, dtypes."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from PIL import Image
from torch import Tensor

from cmrm.base.errors import CmrmError, IncompatibleShiftError, LayerResolutionError
from cmrm.calibration.axes import SafetyAxes
from cmrm.calibration.estimate import sample_shifts
from cmrm.calibration.shift import SampleShift, ShiftMeta, ShiftVectors
from cmrm.data.images import NullImage
from cmrm.interventions.steering import steer
from cmrm.models import VLM, from_model
from cmrm.models.hooks import HookSet, hidden_of, hook_snapshot

from .tiny_models import llava_processor, tiny_llava


def random_shift(
    vlm: VLM, layers: tuple[int, ...] | None = None, scale: float = 1.0
) -> ShiftVectors:
    layers = layers if layers is not None else tuple(range(vlm.num_layers))
    gen = torch.Generator().manual_seed(1)
    vectors = scale * torch.randn(len(layers), vlm.hidden_size, generator=gen)
    meta = ShiftMeta(
        source_model="test",
        model_type=vlm.model_type,
        hidden_size=vlm.hidden_size,
        num_layers=vlm.num_layers,
    )
    directions = torch.randn(len(layers), vlm.hidden_size, generator=gen)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    reference = torch.randn(len(layers), generator=gen)
    threshold = 0.1 * torch.randn(len(layers), generator=gen)
    gate = 0.1 * torch.randn(len(layers), vlm.hidden_size, generator=gen)
    axes = SafetyAxes(layers, directions, reference, threshold, gate)
    return ShiftVectors(layers=layers, vectors=vectors, meta=meta, axes=axes)


def reference_operator(
    operator: str,
    pre: Tensor,
    step: Tensor,
    mask: Tensor,
    u: Tensor,
    r: float,
    gate: Tensor | None = None,
    w: Tensor | None = None,
) -> Tensor | None:
    """Each built-in operator's formula written out independently (README's method section);
    ``gate`` (rows) for ``conditional``, ``conditional-project`` and ``mars``; ``w`` (the
    null-space read-out) for ``alphasteer``. None for an operator not written out here: its own
    test checks its formula, and the steering tests apply its own ``__call__`` instead."""
    m = mask[..., None]
    if operator in ("conditional", "conditional-project", "mars"):
        assert gate is not None
        m = m & gate[:, None, None]
    if operator == "conditional":
        return torch.where(m, pre + step, pre)
    if operator == "alphasteer":
        assert w is not None
        return torch.where(m, pre + (pre @ w)[..., None] * step, pre)
    if operator == "add":
        new = pre + step
    elif operator in ("project", "conditional-project"):
        new = pre + torch.dot(step, u) * u
    elif operator == "norm-preserving":
        moved = pre + step
        new = moved * pre.norm(dim=-1, keepdim=True) / moved.norm(dim=-1, keepdim=True)
    elif operator in ("gated", "mars"):
        along = torch.dot(step, u)
        room = (r - pre @ u).clamp_min(0.0)
        move = torch.minimum(along.expand_as(room), room) if along > 0 else along.expand_as(room)
        new = pre + move[..., None] * u
    else:
        return None
    return torch.where(m, new, pre)


class Recorder:
    """Records a layer's output per call; register before and after the steering hooks."""

    def __init__(self) -> None:
        self.calls: list[Tensor] = []

    def __call__(self, module: Any, args: Any, output: Any) -> None:
        self.calls.append(hidden_of(output).detach().clone())


def batch_of(vlm: VLM, image: Image.Image) -> Any:
    return vlm.encode(["w1 w2 w3", "w4", "w5 w6"], [image, None, image])


def test_alpha_zero_is_bit_identical(vlm: VLM, image: Image.Image) -> None:
    batch = batch_of(vlm, image)
    with torch.inference_mode():
        base = vlm.model(**batch.inputs).logits
        base_tokens = vlm.model.generate(**batch.inputs, max_new_tokens=6, do_sample=False)
    for positions in ("all", "text", "last"):
        with steer(vlm, random_shift(vlm), alpha=0.0, positions=positions), torch.inference_mode():
            logits = vlm.model(**batch.inputs).logits
            tokens = vlm.model.generate(**batch.inputs, max_new_tokens=6, do_sample=False)
        assert torch.equal(logits, base)
        assert torch.equal(tokens, base_tokens)


@pytest.mark.parametrize("positions", ["all", "text", "last"])
def test_exact_delta_at_selected_positions_only(
    vlm: VLM, image: Image.Image, positions: str
) -> None:
    batch = batch_of(vlm, image)
    shift = random_shift(vlm)
    alpha = 0.7
    before0, before1, after1 = Recorder(), Recorder(), Recorder()
    with HookSet() as hooks, torch.inference_mode():
        hooks.forward(vlm.layers.modules[0], before0)
        hooks.forward(vlm.layers.modules[1], before1)
        with steer(vlm, shift, alpha=alpha, layers=[1], positions=positions):
            hooks.forward(vlm.layers.modules[1], after1)
            vlm.model(**batch.inputs)
        base0 = Recorder()
        hooks.forward(vlm.layers.modules[0], base0)
        vlm.model(**batch.inputs)
    # layer 0 is not selected: identical to an unsteered pass
    assert torch.equal(before0.calls[0], base0.calls[0])
    delta = after1.calls[0] - before1.calls[0]
    expected_mask = torch.zeros(delta.shape[:2], dtype=torch.bool)
    attn, img_mask = batch.attention_mask.bool(), batch.image_mask
    for row in (0, 2):  # rows with an image
        if positions == "all":
            expected_mask[row] = attn[row]
        elif positions == "text":
            expected_mask[row] = attn[row] & ~img_mask[row]
        else:
            expected_mask[row, -1] = True
    step = (alpha * shift.vector(1)).to(delta.dtype)
    expected = before1.calls[0] + expected_mask[..., None].float() * step
    assert torch.equal(after1.calls[0], expected)
    assert not delta[1].any(), "the text-only row must never be shifted"


def test_kv_cache_last_shifts_every_generated_token(vlm: VLM, image: Image.Image) -> None:
    batch = batch_of(vlm, image)
    shift = random_shift(vlm)
    pre, post = Recorder(), Recorder()
    with HookSet() as hooks, torch.inference_mode():
        hooks.forward(vlm.layers.modules[2], pre)
        with steer(vlm, shift, alpha=1.0, positions="last"):
            hooks.forward(vlm.layers.modules[2], post)
            vlm.model.generate(**batch.inputs, max_new_tokens=5, do_sample=False)
    lengths = [call.shape[1] for call in post.calls]
    assert lengths[0] == batch.input_ids.shape[1] and lengths[1:] == [1, 1, 1, 1]
    step = shift.vector(2)
    prefill = post.calls[0] - pre.calls[0]
    assert not prefill[:, :-1].any(), "earlier prompt positions must be untouched"
    torch.testing.assert_close(prefill[0, -1], step)
    assert not prefill[1].any()
    for pre_call, post_call in zip(pre.calls[1:], post.calls[1:], strict=True):
        diff = post_call - pre_call
        torch.testing.assert_close(diff[0, 0], step)
        torch.testing.assert_close(diff[2, 0], step)
        assert not diff[1].any()


def test_generation_without_cache_matches_cached(vlm: VLM, image: Image.Image) -> None:
    batch = batch_of(vlm, image)
    shift = random_shift(vlm, scale=2.0)
    with steer(vlm, shift, alpha=1.0, positions="last"), torch.inference_mode():
        cached = vlm.model.generate(**batch.inputs, max_new_tokens=5, do_sample=False)
        uncached = vlm.model.generate(
            **batch.inputs, max_new_tokens=5, do_sample=False, use_cache=False
        )
    assert torch.equal(cached, uncached)


def test_sample_level_null_image_recovers_text_state(vlm: VLM) -> None:
    null = NullImage.parse("blank")
    prompts = ["w1 w2 w3", "w7 w8"]
    null_images = [null.like(None), null.like(None)]
    layer = 1
    shift = sample_shifts(vlm, prompts, null_images, null=null, layers=[layer])
    text_batch = vlm.encode(prompts, [None, None])
    null_batch = vlm.encode(prompts, null_images)
    text_rec, steered_rec = Recorder(), Recorder()
    with HookSet() as hooks, torch.inference_mode():
        hooks.forward(vlm.layers.modules[layer], text_rec)
        vlm.model(**text_batch.inputs)
    with steer(vlm, shift, alpha=1.0, positions="last"), HookSet() as hooks:
        hooks.forward(vlm.layers.modules[layer], steered_rec)
        with torch.inference_mode():
            vlm.model(**null_batch.inputs)
    torch.testing.assert_close(steered_rec.calls[0][:, -1], text_rec.calls[0][:, -1])


def test_hooks_removed_on_exit_error_and_validation_failure(vlm: VLM, image: Image.Image) -> None:
    batch = batch_of(vlm, image)
    with torch.inference_mode():
        vlm.model(**batch.inputs)  # let transformers install its own permanent hooks first
    snapshot = hook_snapshot(vlm.model)
    with steer(vlm, random_shift(vlm), alpha=1.0):
        assert hook_snapshot(vlm.model) != snapshot
        with torch.inference_mode():
            vlm.model(**batch.inputs)
    assert hook_snapshot(vlm.model) == snapshot
    with pytest.raises(RuntimeError, match="boom"), steer(vlm, random_shift(vlm), alpha=1.0):
        raise RuntimeError("boom")
    assert hook_snapshot(vlm.model) == snapshot
    with pytest.raises(LayerResolutionError), steer(vlm, random_shift(vlm), layers=[0, 99]):
        pass
    with pytest.raises(IncompatibleShiftError), steer(vlm, random_shift(vlm, (0,)), layers=[1]):
        pass
    with pytest.raises(CmrmError, match="positions"), steer(vlm, random_shift(vlm), positions="x"):
        pass
    with pytest.raises(CmrmError, match="alpha"), steer(vlm, random_shift(vlm), alpha=float("nan")):
        pass
    assert hook_snapshot(vlm.model) == snapshot


def test_incompatible_shift_is_rejected(vlm: VLM) -> None:
    other = from_model(tiny_llava(text_layers=4), llava_processor())
    with pytest.raises(IncompatibleShiftError, match="layers"), steer(vlm, random_shift(other)):
        pass
    wide = SampleShift(layers=(0,), vectors=torch.zeros(1, 1, 16))
    with pytest.raises(IncompatibleShiftError, match="width"), steer(vlm, wide):
        pass


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_models(image: Image.Image, dtype: torch.dtype) -> None:
    vlm = from_model(tiny_llava(dtype=dtype), llava_processor())
    batch = vlm.encode(["w1 w2"], [image])
    shift = random_shift(vlm)  # float32 vectors on a low-precision model
    with torch.inference_mode():
        base = vlm.model(**batch.inputs).logits
        with steer(vlm, shift, alpha=0.0):
            zero = vlm.model(**batch.inputs).logits
        with steer(vlm, shift, alpha=1.0):
            steered = vlm.model(**batch.inputs).logits
    assert steered.dtype == dtype
    assert torch.equal(zero, base)
    assert not torch.equal(steered, base)


def test_generated_false_shifts_the_prompt_only(vlm: VLM, image: Image.Image) -> None:
    batch = batch_of(vlm, image)
    shift = random_shift(vlm)
    pre, post = Recorder(), Recorder()
    with HookSet() as hooks, torch.inference_mode():
        hooks.forward(vlm.layers.modules[1], pre)
        with steer(vlm, shift, alpha=1.0, positions="last", generated=False):
            hooks.forward(vlm.layers.modules[1], post)
            vlm.model.generate(**batch.inputs, max_new_tokens=3, do_sample=False)
    prefill = post.calls[0] - pre.calls[0]
    torch.testing.assert_close(prefill[0, -1], shift.vector(1))
    for pre_call, post_call in zip(pre.calls[1:], post.calls[1:], strict=True):
        assert torch.equal(pre_call, post_call), "generated tokens must be left alone"


def test_conditional_steers_only_rows_above_the_threshold(vlm: VLM, image: Image.Image) -> None:
    """Two image rows, a threshold between their pre-steer projections: only the row above it
    is steered, in the prefill and in every decoding step (the prefill's decision is kept)."""
    batch = vlm.encode(["w1 w2 w3", "w4 w5"], [image, Image.new("RGB", (40, 30), "blue")])
    shift = random_shift(vlm)
    assert shift.axes is not None
    layer, pre = 1, Recorder()
    with HookSet() as hooks, torch.inference_mode():
        hooks.forward(vlm.layers.modules[layer], pre)
        vlm.model(**batch.inputs)
    u = shift.axes.axis(layer).direction
    scores = pre.calls[0][:, -1] @ u
    assert scores[0] != scores[1]
    high = int(torch.argmax(scores))
    threshold = shift.axes.threshold.clone()  # type: ignore[union-attr]
    threshold[shift.layers.index(layer)] = scores.mean()
    axes = SafetyAxes(shift.layers, shift.axes.directions, shift.axes.reference, threshold)
    shift = ShiftVectors(shift.layers, shift.vectors, shift.meta, axes)
    before, after = Recorder(), Recorder()
    with HookSet() as hooks, torch.inference_mode():
        hooks.forward(vlm.layers.modules[layer], before)
        with steer(vlm, shift, alpha=1.0, layers=[layer], operator="conditional"):
            hooks.forward(vlm.layers.modules[layer], after)
            vlm.model.generate(**batch.inputs, max_new_tokens=3, do_sample=False)
    assert len(after.calls) == 3
    for b, a in zip(before.calls, after.calls, strict=True):
        changed = (a - b).abs().sum(dim=(1, 2)) > 0
        assert changed.tolist() == [row == high for row in range(2)]
    without = random_shift(vlm)
    assert without.axes is not None
    bare = SafetyAxes(without.layers, without.axes.directions, without.axes.reference)
    with (
        pytest.raises(IncompatibleShiftError, match="threshold"),
        steer(
            vlm,
            ShiftVectors(without.layers, without.vectors, without.meta, bare),
            operator="conditional",
        ),
    ):
        pass
