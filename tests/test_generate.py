"""Batched generation equals one-by-one generation; methods behave as specified."""

from __future__ import annotations

import pytest
from PIL import Image

from cmrm.errors import CmrmError, DataError
from cmrm.estimate import calibrate
from cmrm.generate import GenerationOptions, Steering, generate_batch, generate_items
from cmrm.items import Item
from cmrm.models import VLM

PROMPTS = ["w1 w2 w3 w4 w5", "w6", "w7 w8", "w9 w10 w11"]


def images(image: Image.Image) -> list[Image.Image | None]:
    other = Image.new("RGB", (64, 20), "blue")
    return [image, None, other, image]


@pytest.mark.parametrize("method", ["none", "dataset", "sample", "text-only"])
def test_batched_equals_one_by_one(vlm: VLM, image: Image.Image, method: str) -> None:
    imgs = images(image)
    anchors = [Item(id=str(i), prompt=p, image=image) for i, p in enumerate(PROMPTS)]
    shift = calibrate(vlm, anchors) if method == "dataset" else None
    steering = Steering(method=method, alpha=4.0, positions="all", shift=shift)  # type: ignore[arg-type]
    options = GenerationOptions(max_new_tokens=8)
    batched = generate_batch(vlm, PROMPTS, imgs, steering, options)
    single = [
        generate_batch(vlm, [p], [i], steering, options)[0]
        for p, i in zip(PROMPTS, imgs, strict=True)
    ]
    assert batched == single
    assert all(answer for answer in batched)


def test_steering_changes_image_rows_only(vlm: VLM, image: Image.Image) -> None:
    imgs = images(image)
    options = GenerationOptions(max_new_tokens=8)
    plain = generate_batch(vlm, PROMPTS, imgs, Steering(), options)
    steered = generate_batch(vlm, PROMPTS, imgs, Steering("sample", alpha=50.0), options)
    assert plain[1] == steered[1], "the text-only row must not change"
    assert plain[0] != steered[0] or plain[2] != steered[2]


def test_text_only_drops_the_image(vlm: VLM, image: Image.Image) -> None:
    options = GenerationOptions(max_new_tokens=6)
    dropped = generate_batch(vlm, ["w1 w2"], [image], Steering("text-only"), options)
    text = generate_batch(vlm, ["w1 w2"], [None], Steering(), options)
    assert dropped == text


def test_generate_items_keeps_order_and_checks_images(vlm: VLM, tmp_path, image) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "a.png"
    image.save(path)
    items = [
        Item(id=str(i), prompt=p, image=path if i % 2 else None) for i, p in enumerate(PROMPTS)
    ]
    options = GenerationOptions(max_new_tokens=4)
    answers = generate_items(vlm, items, Steering(), options, batch_size=3)
    expected = [
        generate_batch(
            vlm,
            [it.prompt],
            [Image.open(path).convert("RGB") if it.image else None],
            Steering(),
            options,
        )[0]
        for it in items
    ]
    assert answers == expected
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png"):
        generate_items(vlm, [Item(id="x", prompt="w1", image=broken)], Steering(), options)


def test_sampling_is_seeded(vlm: VLM, image: Image.Image) -> None:
    options = GenerationOptions(max_new_tokens=8, do_sample=True, temperature=1.5, seed=3)
    first = generate_batch(vlm, ["w1"], [image], Steering(), options)
    second = generate_batch(vlm, ["w1"], [image], Steering(), options)
    assert first == second


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(CmrmError, match="needs a calibrated shift"):
        Steering("dataset")
    with pytest.raises(CmrmError, match="method"):
        Steering("magic")  # type: ignore[arg-type]
    with pytest.raises(CmrmError, match="positions"):
        Steering("sample", positions="middle")
    with pytest.raises(CmrmError, match="max_new_tokens"):
        GenerationOptions(max_new_tokens=0)
