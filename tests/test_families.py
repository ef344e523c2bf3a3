"""Every supported VLM family, on a tiny model built from config with the family's real processor:
layer location, encoding, alpha-0 identity, exact deltas under the KV cache, hook hygiene,
batched generation and capture."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from PIL import Image
from torch import Tensor
from transformers import AutoConfig, AutoModelForImageTextToText

from cmrm.base.errors import UnsupportedModelError
from cmrm.calibration.capture import capture_states
from cmrm.generation.generate import GenerationOptions, generate_batch
from cmrm.interventions import Intervention
from cmrm.interventions.operators import get_operator, operator_names
from cmrm.interventions.steering import steer
from cmrm.models import FAMILIES, VLM, Batch, from_model
from cmrm.models.hooks import HookSet, hook_snapshot

from .test_steer import Recorder, random_shift, reference_operator
from .tiny_families import FAMILY_BUILDERS, PLACEHOLDERS, tiny_vlm

NAMES = sorted(FAMILY_BUILDERS)
TEXT_MODEL = ("idefics3", "smolvlm")  # decoder under model.text_model, not model.language_model
RED = Image.new("RGB", (40, 30), "red")
BLUE = Image.new("RGB", (24, 36), "blue")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: one intra-op thread is ~10x faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def family_vlm(family: str) -> VLM:
    model, processor = tiny_vlm(family)
    return from_model(model, processor, model_id=f"tiny-{family}")


def mixed(vlm: VLM, prompts: list[str], images: list[Image.Image | None]) -> Batch:
    """A batch with text-only rows where the family allows them, else every row with an image."""
    if not vlm.spec.mixed_batches:
        images = [img or RED for img in images]
    return vlm.encode(prompts, images)


def batch_of(vlm: VLM) -> Batch:
    return mixed(vlm, ["w1 w2 w3", "w4", "w5 w6"], [RED, None, BLUE])


def test_every_family_in_the_table_has_a_builder() -> None:
    assert set(FAMILY_BUILDERS) == {spec.name for spec in FAMILIES}


@pytest.mark.parametrize("family", NAMES)
def test_decoder_layers_are_located(family: str) -> None:
    vlm = family_vlm(family)
    stack = "text_model" if family in TEXT_MODEL else "language_model"
    assert vlm.family == family
    assert vlm.layers.path == f"model.{stack}.layers"
    assert vlm.layers.modules is vlm.model.get_submodule(f"model.{stack}.layers")
    text_config = vlm.model.config.get_text_config()
    assert vlm.num_layers == text_config.num_hidden_layers == 3
    assert vlm.hidden_size == text_config.hidden_size == 32


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "paligemma", "idefics3"])
def test_a_deeper_vision_stack_is_never_chosen(family: str) -> None:
    model, processor = tiny_vlm(family, text_layers=2, vision_layers=4)
    vlm = from_model(model, processor)
    stack = "text_model" if family in TEXT_MODEL else "language_model"
    assert vlm.layers.path == f"model.{stack}.layers"
    assert vlm.num_layers == 2


def unpadded(batch: Batch, row: int) -> Tensor:
    return batch.input_ids[row][batch.attention_mask[row].bool()]


def assert_left_padded(batch: Batch) -> None:
    mask = batch.attention_mask.long()
    assert bool(mask[:, -1].all()), "the last column is a real token in every row"
    assert bool((mask[:, 1:] >= mask[:, :-1]).all()), "padding only on the left"


@pytest.mark.parametrize("family", NAMES)
def test_encode_marks_exactly_the_image_block(family: str) -> None:
    vlm = family_vlm(family)
    prompt = "w1 w2 w3"
    rows: list[Image.Image | None] = [RED, None, BLUE]
    batches: list[tuple[Batch, tuple[int, ...]]]
    if vlm.spec.mixed_batches:
        batches = [(vlm.encode([prompt, prompt, "w5"], rows), (0, 1, 2))]
    else:
        batches = [
            (vlm.encode([prompt], [None]), (1,)),
            (vlm.encode([prompt, "w5"], [RED, BLUE]), (0, 2)),
        ]
    by_row: dict[int, Tensor] = {}
    config = vlm.model.config
    image_id = getattr(config, "image_token_id", None) or config.image_token_index
    for batch, where in batches:
        assert_left_padded(batch)
        assert batch.has_image.tolist() == [rows[i] is not None for i in where]
        for local, row in enumerate(where):
            ids, mask = (
                unpadded(batch, local),
                batch.image_mask[local][batch.attention_mask[local].bool()],
            )
            by_row[row] = ids[~mask]
            assert int(mask.sum()) == int(batch.image_mask[local].sum()), "padding is not image"
            if rows[row] is None:
                assert not mask.any()
                continue
            assert int((ids == image_id).sum()) > 0
            extras = [vlm.tokenizer.convert_tokens_to_ids(t) for t in vlm.spec.extra_image_tokens]
            expected = int((ids == image_id).sum()) + int(
                torch.isin(ids, torch.tensor(extras)).sum()
            )
            assert int(mask.sum()) == expected
    # the image row minus its image block is exactly the text-only row
    assert torch.equal(by_row[0], by_row[1])
    with_image, without = vlm.render(prompt, True), vlm.render(prompt, False)
    placeholder = PLACEHOLDERS[family]
    assert (with_image.count(placeholder) == 1) if placeholder else (with_image == without)
    assert with_image.replace(placeholder, "", 1) == without


OPS = sorted(operator_names())


@pytest.mark.parametrize("operator", OPS)
@pytest.mark.parametrize("family", NAMES)
def test_alpha_zero_is_bit_identical(family: str, operator: str) -> None:
    vlm = family_vlm(family)
    batch = batch_of(vlm)
    with torch.inference_mode():
        base = vlm.model(**batch.inputs).logits
        base_tokens = vlm.model.generate(**batch.inputs, max_new_tokens=4, do_sample=False)
    for positions in ("all", "text", "last"):
        shift = random_shift(vlm)
        with (
            steer(vlm, shift, alpha=0.0, positions=positions, operator=operator),
            torch.inference_mode(),
        ):
            logits = vlm.model(**batch.inputs).logits
            tokens = vlm.model.generate(**batch.inputs, max_new_tokens=4, do_sample=False)
        assert torch.equal(logits, base)
        assert torch.equal(tokens, base_tokens)


@pytest.mark.parametrize("operator", OPS)
@pytest.mark.parametrize("positions", ["last", "all"])
@pytest.mark.parametrize("family", NAMES)
def test_exact_delta_through_cached_generation(family: str, positions: str, operator: str) -> None:
    vlm = family_vlm(family)
    batch = batch_of(vlm)
    shift, alpha, layer = random_shift(vlm), 0.7, 1
    before0, after0, before, after = Recorder(), Recorder(), Recorder(), Recorder()
    with HookSet() as hooks, torch.inference_mode():
        hooks.forward(vlm.layers.modules[0], before0)
        hooks.forward(vlm.layers.modules[layer], before)
        with steer(vlm, shift, alpha=alpha, layers=[layer], positions=positions, operator=operator):
            hooks.forward(vlm.layers.modules[0], after0)
            hooks.forward(vlm.layers.modules[layer], after)
            vlm.model.generate(**batch.inputs, max_new_tokens=4, do_sample=False)
    assert [c.shape[1] for c in after.calls] == [batch.input_ids.shape[1], 1, 1, 1]
    step = (alpha * shift.vector(layer)).to(torch.float32)
    shifted_rows = batch.has_image
    prompt_mask = (
        batch.attention_mask.bool()
        if positions == "all"
        else torch.zeros_like(batch.attention_mask, dtype=torch.bool)
    )
    prompt_mask[:, -1] = True
    assert shift.axes is not None
    axis = shift.axes.axis(layer)
    # conditional: rows whose pre-steer last prompt state reads as harmful (the prefill decides)
    gate = (before.calls[0][:, -1] @ axis.direction) > axis.threshold
    for i, (pre, post) in enumerate(zip(before.calls, after.calls, strict=True)):
        mask = prompt_mask if i == 0 else torch.ones(pre.shape[:2], dtype=torch.bool)
        mask = mask & shifted_rows[:, None]
        expected = reference_operator(
            operator, pre, step, mask, axis.direction, axis.reference, gate, axis.gate
        )
        if get_operator(operator).gates:
            mask = mask & gate[:, None]
        if expected is None:  # an operator without a formula in reference_operator: its own
            rows = step.expand(pre.shape[0], -1)  # math, at the positions steer chose
            expected = get_operator(operator)(pre, rows, mask, axis)
        if operator in ("add", "conditional"):
            assert torch.equal(post, pre + mask[..., None].float() * step), f"call {i}"
            assert torch.equal(post, expected), f"call {i}"
        else:
            torch.testing.assert_close(post, expected, rtol=1e-5, atol=1e-5, msg=f"call {i}")
        assert torch.equal(post[~mask], pre[~mask]), "unselected positions are bit-identical"
    for pre, post in zip(before0.calls, after0.calls, strict=True):
        assert torch.equal(pre, post), "an unselected layer is untouched"


@pytest.mark.parametrize("family", NAMES)
def test_hooks_are_removed_after_the_block(family: str) -> None:
    vlm = family_vlm(family)
    batch = batch_of(vlm)
    with torch.inference_mode():
        vlm.model(**batch.inputs)  # transformers installs its own permanent hooks first
    snapshot = hook_snapshot(vlm.model)
    with steer(vlm, random_shift(vlm), alpha=1.0), torch.inference_mode():
        assert hook_snapshot(vlm.model) != snapshot
        vlm.model(**batch.inputs)
    assert hook_snapshot(vlm.model) == snapshot
    with pytest.raises(RuntimeError, match="boom"), steer(vlm, random_shift(vlm)):
        raise RuntimeError("boom")
    assert hook_snapshot(vlm.model) == snapshot


@pytest.mark.parametrize("operator", [None, *OPS])
@pytest.mark.parametrize("family", NAMES)
def test_batched_generation_equals_one_by_one(family: str, operator: Any) -> None:
    vlm = family_vlm(family)
    prompts = ["w1 w2 w3 w4 w5 w6", "w7", "w8 w9"]
    images: list[Image.Image | None] = (
        [RED, None, BLUE] if vlm.spec.mixed_batches else [RED, BLUE, RED]
    )
    steering = (
        None
        if operator is None
        else Intervention("sample", operator=operator, alpha=1.0, shift=random_shift(vlm))
    )
    options = GenerationOptions(max_new_tokens=4)
    batched = generate_batch(vlm, prompts, images, steering, options)
    single = [
        generate_batch(vlm, [p], [i], steering, options)[0]
        for p, i in zip(prompts, images, strict=True)
    ]
    assert batched == single


@pytest.mark.parametrize("family", NAMES)
def test_capture_states_shape_and_rows(family: str) -> None:
    vlm = family_vlm(family)
    prompts = ["w1 w2 w3", "w4 w5"]
    states = capture_states(vlm, prompts, [RED, None])
    assert states.shape == (vlm.num_layers, 2, vlm.hidden_size)
    alone = capture_states(vlm, prompts[1:], [None])
    torch.testing.assert_close(states[:, 1], alone[:, 0])


@pytest.mark.parametrize("family", NAMES)
def test_capture_stopping_after_the_deepest_layer_changes_no_state(family: str) -> None:
    """Skipping the final norm and LM head (the default) must record the same states as a full
    pass, for every chosen depth (the last layer included)."""
    vlm = family_vlm(family)
    prompts = ["w1 w2 w3", "w4 w5"]
    for layers in (None, [0]):
        early = capture_states(vlm, prompts, [RED, None], layers=layers)
        full = capture_states(vlm, prompts, [RED, None], layers=layers, stop_early=False)
        torch.testing.assert_close(early, full, rtol=0, atol=0)


def test_unsupported_model_type_lists_the_supported_families() -> None:
    text = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=100,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cross_attention_layers=[1],
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_global_layers=1,
        attention_heads=4,
        image_size=28,
        patch_size=14,
        vision_output_dim=64,
        intermediate_layers_indices=[0],
    )
    config = AutoConfig.for_model("mllama", text_config=text, vision_config=vision)
    model = AutoModelForImageTextToText.from_config(config)
    _, processor = tiny_vlm("llava")
    with pytest.raises(UnsupportedModelError, match="cross-attention") as err:
        from_model(model, processor)
    for spec in FAMILIES:
        assert spec.name in str(err.value)


def test_paligemma_processor_needs_an_image_in_every_row() -> None:
    """Why its spec says mixed_batches=False and text_rows_by_tokenizer=True."""
    vlm = family_vlm("paligemma")
    assert not vlm.spec.mixed_batches and vlm.spec.text_rows_by_tokenizer
    with pytest.raises(ValueError, match="images"):
        vlm.processor(text=["w1"], return_tensors="pt")
    with pytest.raises(ValueError, match="1 images for 2 prompts"):
        vlm.processor(text=["w1", "w2"], images=[RED], return_tensors="pt")
