"""Batched generation equals one-by-one generation; methods behave as specified."""

from __future__ import annotations

import pytest
from PIL import Image

from cmrm.base.errors import CmrmError, DataError
from cmrm.calibration.estimate import calibrate
from cmrm.calibration.shift import ShiftVectors
from cmrm.data.items import Item
from cmrm.generation.baselines import Baseline
from cmrm.generation.generate import GenerationOptions, generate_batch, generate_items
from cmrm.generation.methods import Method, generate_method
from cmrm.interventions import Intervention
from cmrm.interventions.operators import operator_names
from cmrm.models import VLM

PROMPTS = ["w1 w2 w3 w4 w5", "w6", "w7 w8", "w9 w10 w11"]


def images(image: Image.Image) -> list[Image.Image | None]:
    other = Image.new("RGB", (64, 20), "blue")
    return [image, None, other, image]


def kinded_shift(vlm: VLM, image: Image.Image) -> ShiftVectors:
    """A calibrated shift with safety axes (anchors of both kinds)."""
    anchors = [
        Item(id=str(i), prompt=p, image=image, kind="harmful" if i % 2 else "benign")
        for i, p in enumerate(PROMPTS)
    ]
    shift = calibrate(vlm, anchors, gate=True)
    assert shift.axes is not None and shift.axes.gate is not None
    return shift


def method_of(name: str, operator: str, shift: ShiftVectors) -> Method:
    if name in ("dataset", "sample"):
        return Intervention(name, operator=operator, alpha=4.0, positions="all", shift=shift)  # type: ignore[arg-type]
    return Baseline(name)  # type: ignore[arg-type]


GRID = [(name, "add") for name in ("none", "text-only", "adashield")] + [
    (source, op) for source in ("dataset", "sample") for op in sorted(operator_names())
]


@pytest.mark.parametrize(("method", "operator"), GRID)
def test_batched_equals_one_by_one(
    vlm: VLM, image: Image.Image, method: str, operator: str
) -> None:
    imgs = images(image)
    chosen = method_of(method, operator, kinded_shift(vlm, image))
    options = GenerationOptions(max_new_tokens=8)
    items = [
        Item(id=str(i), prompt=p, image=im)
        for i, (p, im) in enumerate(zip(PROMPTS, imgs, strict=True))
    ]
    batched = generate_method(vlm, items, chosen, options, batch_size=4)
    single = [generate_method(vlm, [it], chosen, options)[0] for it in items]
    assert batched == single
    assert all(answer for answer in batched)


@pytest.mark.parametrize("operator", sorted(operator_names()))
def test_steering_changes_image_rows_only(vlm: VLM, image: Image.Image, operator: str) -> None:
    imgs = images(image)
    options = GenerationOptions(max_new_tokens=8)
    shift = kinded_shift(vlm, image)
    plain = generate_batch(vlm, PROMPTS, imgs, None, options)
    iv = Intervention("sample", operator=operator, alpha=50.0, shift=shift)
    steered = generate_batch(vlm, PROMPTS, imgs, iv, options)
    assert plain[1] == steered[1], "the text-only row must not change"
    assert plain[0] != steered[0] or plain[2] != steered[2] or plain[3] != steered[3]


def test_text_only_drops_the_image(vlm: VLM, image: Image.Image) -> None:
    options = GenerationOptions(max_new_tokens=6)
    item = Item(id="a", prompt="w1 w2", image=image)
    dropped = generate_method(vlm, [item], Baseline("text-only"), options)
    text = generate_batch(vlm, ["w1 w2"], [None], None, options)
    assert dropped == text


def test_adashield_prepends_its_prompt(vlm: VLM, image: Image.Image) -> None:
    options = GenerationOptions(max_new_tokens=6)
    item = Item(id="a", prompt="w1 w2", image=image)
    shielded = generate_method(vlm, [item], Baseline("adashield", {"prompt": "w9 "}), options)
    assert shielded == generate_batch(vlm, ["w9 w1 w2"], [image], None, options)


def test_ecso_answers_from_a_caption_without_the_image(vlm: VLM, image: Image.Image) -> None:
    from cmrm.generation.baselines import ECSO_ANSWER, ECSO_CAPTION

    options = GenerationOptions(max_new_tokens=5)
    items = [Item(id="a", prompt="w1 w2", image=image), Item(id="b", prompt="w3", image=None)]
    answers = generate_method(vlm, items, Baseline("ecso", {"caption_tokens": 3}), options)
    caption_options = GenerationOptions(max_new_tokens=3)
    caption = generate_batch(
        vlm, [ECSO_CAPTION.format(prompt="w1 w2")], [image], None, caption_options
    )[0]
    final = ECSO_ANSWER.format(caption=caption, prompt="w1 w2")
    assert answers[0] == generate_batch(vlm, [final], [None], None, options)[0]
    assert answers[1] == generate_batch(vlm, ["w3"], [None], None, options)[0]


def test_generate_items_keeps_order_and_checks_images(vlm: VLM, tmp_path, image) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "a.png"
    image.save(path)
    items = [
        Item(id=str(i), prompt=p, image=path if i % 2 else None) for i, p in enumerate(PROMPTS)
    ]
    options = GenerationOptions(max_new_tokens=4)
    answers = generate_items(vlm, items, None, options, batch_size=3)
    expected = [
        generate_batch(
            vlm,
            [it.prompt],
            [Image.open(path).convert("RGB") if it.image else None],
            None,
            options,
        )[0]
        for it in items
    ]
    assert answers == expected
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png"):
        generate_items(vlm, [Item(id="x", prompt="w1", image=broken)], None, options)


def test_sampling_is_seeded(vlm: VLM, image: Image.Image) -> None:
    options = GenerationOptions(max_new_tokens=8, do_sample=True, temperature=1.5, seed=3)
    first = generate_batch(vlm, ["w1"], [image], None, options)
    second = generate_batch(vlm, ["w1"], [image], None, options)
    assert first == second


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(CmrmError, match="needs a calibrated shift"):
        Intervention("dataset")
    with pytest.raises(CmrmError, match="source"):
        Intervention("magic")  # type: ignore[arg-type]
    with pytest.raises(CmrmError, match="positions"):
        Intervention("sample", positions="middle")  # type: ignore[arg-type]
    with pytest.raises(CmrmError, match="unknown operator 'projct'.*Did you mean 'project'"):
        Intervention("sample", operator="projct")
    with pytest.raises(CmrmError, match="needs the safety axes"):
        Intervention("sample", operator="gated")
    with pytest.raises(CmrmError, match="finite"):
        Intervention("sample", alpha=float("nan"))
    with pytest.raises(CmrmError, match="unknown baseline"):
        Baseline("magic")  # type: ignore[arg-type]
    with pytest.raises(CmrmError, match="no option 'prompt'"):
        Baseline("ecso", {"prompt": "x"})
    with pytest.raises(CmrmError, match="max_new_tokens"):
        GenerationOptions(max_new_tokens=0)
