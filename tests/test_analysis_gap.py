"""run_gap end to end on a tiny LLaVA, and the variants it builds (with a recording capture)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from cmrm.analysis import gap as gap_module
from cmrm.analysis.gap import STEERED, run_gap
from cmrm.base.errors import CmrmError, IncompatibleShiftError
from cmrm.calibration.estimate import calibrate
from cmrm.calibration.shift import ShiftVectors
from cmrm.data.images import NullImage
from cmrm.data.items import Item
from cmrm.interventions import Intervention
from cmrm.models import VLM

WORDS = [f"w{i}" for i in range(80)]


def make_items(n: int, *, seed: int = 0, without_image: Sequence[int] = ()) -> list[Item]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        prompt = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 7))))
        size = (30 + 2 * i, 40)
        pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
        image = None if i in without_image else Image.fromarray(pixels)
        caption = "red square" if i % 2 else None
        items.append(Item(id=f"q{i}", prompt=prompt, image=image, caption=caption))
    return items


def test_run_gap_on_a_tiny_llava(vlm: VLM, tmp_path: Path) -> None:
    items = make_items(12)
    last = vlm.num_layers - 1
    # the image contrast from the same items, applied at the last layer only: there the steered
    # states are exactly h(image) + mean(h(text) - h(image)), so the gap must close (up to
    # padding and float error)
    shift = calibrate(vlm, items, contrast="image", layers=[last])
    nulls = (NullImage(), NullImage.parse("noise:uniform:3"))
    out = tmp_path / "gap"
    report = run_gap(
        vlm,
        items,
        out_dir=out,
        nulls=nulls,
        intervention=Intervention(shift=shift, positions="last"),
        batch_size=5,
        meta={"data": "toy"},
    )
    expected = ("text", "image", "null:blank:white", "null:noise:uniform:3", "caption", STEERED)
    assert report.variants == expected
    assert [row.layer for row in report.layers] == list(range(vlm.num_layers))
    row = report.layer(last)
    assert row.n_text == 12 and row.get("caption").n == 6 and row.get(STEERED).n == 12
    assert row.get("image").normalised_distance > 0.05  # images move the tiny model's states
    assert row.gap_closed > 0.99
    assert row.get(STEERED).normalised_distance < 0.01 * row.get("image").normalised_distance
    assert row.get("image").probe_folds == 5
    # earlier layers are not steered: their image+cmrm states equal the image ones
    first = report.layer(0)
    assert first.get(STEERED).distance == pytest.approx(first.get("image").distance, rel=1e-4)

    files = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert files == [
        "figures",
        "figures/layers.png",
        "figures/pca.png",
        "metrics.json",
        "summary.md",
    ]  # and no temporary files left behind
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["meta"]["data"] == "toy" and metrics["meta"]["model"] == "tiny-llava"
    assert metrics["meta"]["shift"]["layers"] == [last]
    assert metrics["steered"] == STEERED and len(metrics["layers"]) == vlm.num_layers
    for name in ("pca.png", "layers.png"):
        with Image.open(out / "figures" / name) as img:
            assert img.format == "PNG" and img.width > 800
    summary = (out / "summary.md").read_text()
    assert "| layer | distance (spreads) |" in summary and "(figures/pca.png)" in summary


class Recorder:
    """Stands in for capture_states: records every call, returns states derived from inputs."""

    def __init__(self, vlm: VLM) -> None:
        self.vlm = vlm
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self,
        vlm: VLM,
        prompts: list[str],
        images: list[Image.Image | None],
        layers: tuple[int, ...],
    ) -> torch.Tensor:
        steering = bool(vlm.model._forward_pre_hooks)  # steer() hooks the top-level model
        self.calls.append({"prompts": prompts, "images": images, "steering": steering})
        rng = np.random.default_rng(len(self.calls))
        states = rng.normal(size=(len(layers), len(prompts), vlm.hidden_size))
        return torch.from_numpy(states).float()


def test_variants_get_the_right_inputs(
    vlm: VLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = make_items(4, without_image=[2])
    recorder = Recorder(vlm)
    monkeypatch.setattr(gap_module, "_capture", recorder)
    shift = calibrate(vlm, make_items(3), contrast="image")
    report = run_gap(
        vlm,
        items,
        out_dir=tmp_path,
        nulls=(NullImage("blank", "black"),),
        intervention=Intervention("dataset", positions="last", shift=shift),
        batch_size=4,
        max_samples=0,
    )
    text, image, null, caption, steered = recorder.calls
    prompts = [item.prompt for item in items]
    assert text["prompts"] == prompts and text["images"] == [None] * 4
    assert image["prompts"] == [prompts[i] for i in (0, 1, 3)]
    assert [img.size for img in image["images"]] == [(30, 40), (32, 40), (36, 40)]
    assert null["prompts"] == prompts
    assert [img.size for img in null["images"]] == [(30, 40), (32, 40), (336, 336), (36, 40)]
    assert null["images"][0].getpixel((0, 0)) == (0, 0, 0)
    assert caption["prompts"] == [f"red square\n{items[i].prompt}" for i in (1, 3)]
    assert caption["images"] == [None, None]
    assert steered["steering"] and not any(c["steering"] for c in (text, image, null, caption))
    assert steered["prompts"] == image["prompts"]
    assert not vlm.model._forward_pre_hooks  # steering hooks removed
    assert report.layer(0).get("image").n == 3 and report.layer(0).get("caption").n_pairs == 2
    assert not (tmp_path / "figures" / "pca.png").exists()  # no samples kept, no scatter
    assert (tmp_path / "figures" / "layers.png").is_file()


def test_text_only_data_uses_the_null_image_as_reference(
    vlm: VLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gap_module, "_capture", Recorder(vlm))
    items = make_items(4, without_image=range(4))
    report = run_gap(vlm, items, out_dir=tmp_path, max_samples=4)
    assert report.primary == "null:blank:white"
    assert "image" not in report.variants


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"items": []}, "no items"),
        ({"batch_size": 0}, "batch size"),
        ({"nulls": (NullImage(), NullImage.parse("blank:white"))}, "repeat"),
        ({"items": make_items(2, without_image=[0, 1]), "nulls": ()}, "nothing to compare"),
        ({"layers": [7]}, "out of range"),
    ],
)
def test_bad_arguments_fail_before_any_work(
    vlm: VLM, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"items": make_items(2), "out_dir": tmp_path / "out", **kwargs}
    with pytest.raises(CmrmError, match=message):
        run_gap(vlm, **args)
    assert not (tmp_path / "out").exists()


def test_shift_for_another_model_is_rejected(
    vlm: VLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shift = calibrate(vlm, make_items(2), contrast="image")
    meta = shift.meta.__class__(**{**shift.meta.__dict__, "hidden_size": 8})
    other = ShiftVectors(shift.layers, torch.zeros(len(shift.layers), 8), meta)
    calls: list[int] = []
    monkeypatch.setattr(gap_module, "_capture", lambda *args: calls.append(1))
    with pytest.raises(IncompatibleShiftError, match="hidden size 8"):
        run_gap(
            vlm, make_items(2), out_dir=tmp_path / "out", intervention=Intervention(shift=other)
        )
    with pytest.raises(CmrmError, match="positions must be one of"):
        Intervention(shift=shift, positions="first")  # type: ignore[arg-type]
    assert not calls and not (tmp_path / "out").exists()
