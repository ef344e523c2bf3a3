"""Shift vectors: file format, compatibility errors, estimators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from cmrm.base.errors import CmrmError, DataError, IncompatibleShiftError
from cmrm.calibration.contrast import pc1_vector
from cmrm.calibration.estimate import calibrate, sample_shifts
from cmrm.calibration.shift import ShiftMeta, ShiftVectors
from cmrm.data.images import NullImage
from cmrm.data.items import Item
from cmrm.models import VLM
from cmrm.models.hooks import HookSet, hidden_of, with_hidden


def meta(**kw: Any) -> ShiftMeta:
    return ShiftMeta(
        **{"source_model": "m", "model_type": "llava", "hidden_size": 4, "num_layers": 3, **kw}
    )


def test_roundtrip(tmp_path: Path) -> None:
    shift = ShiftVectors(layers=(0, 2), vectors=torch.randn(2, 4), meta=meta(estimator="pc1"))
    shift.save(tmp_path / "s")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["shift.json", "shift.safetensors"]
    loaded = ShiftVectors.load(tmp_path / "s")
    assert loaded.layers == (0, 2)
    assert torch.equal(loaded.vectors, shift.vectors)
    assert loaded.meta == shift.meta
    header = json.loads((tmp_path / "s" / "shift.json").read_text())
    for key in (
        "format_version",
        "source_model",
        "model_type",
        "hidden_size",
        "num_layers",
        "layers",
        "estimator",
        "null_image",
        "contrast",
        "read_position",
        "anchor_count",
        "anchor_hash",
        "versions",
    ):
        assert key in header


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(IncompatibleShiftError, match="missing"):
        ShiftVectors.load(tmp_path)
    shift = ShiftVectors(layers=(0,), vectors=torch.ones(1, 4), meta=meta())
    shift.save(tmp_path)
    header = json.loads((tmp_path / "shift.json").read_text())
    header["layers"] = [0, 1]
    (tmp_path / "shift.json").write_text(json.dumps(header))
    with pytest.raises(IncompatibleShiftError, match=r"layers\.1"):
        ShiftVectors.load(tmp_path)
    (tmp_path / "shift.json").write_text("{not json")
    with pytest.raises(IncompatibleShiftError, match="not valid"):
        ShiftVectors.load(tmp_path)


def test_invalid_vectors_rejected() -> None:
    bad = torch.ones(1, 4)
    bad[0, 1] = float("nan")
    with pytest.raises(IncompatibleShiftError, match="NaN"):
        ShiftVectors(layers=(0,), vectors=bad, meta=meta())
    with pytest.raises(IncompatibleShiftError, match="inf"):
        ShiftVectors(layers=(0,), vectors=torch.full((1, 4), float("inf")), meta=meta())
    with pytest.raises(IncompatibleShiftError, match="width"):
        ShiftVectors(layers=(0,), vectors=torch.ones(1, 5), meta=meta())
    with pytest.raises(IncompatibleShiftError, match="distinct"):
        ShiftVectors(layers=(0, 7), vectors=torch.ones(2, 4), meta=meta())


def test_compatibility_checks() -> None:
    shift = ShiftVectors(layers=(0,), vectors=torch.ones(1, 4), meta=meta())
    shift.check_compatible("llava", 4, 3)
    with pytest.raises(IncompatibleShiftError, match="hidden size 4 vs the model's 8"):
        shift.check_compatible("llava", 8, 3)
    with pytest.raises(IncompatibleShiftError, match="3 layers vs the model's 5"):
        shift.check_compatible("llava", 4, 5)
    with pytest.raises(IncompatibleShiftError, match="family 'llava' vs the model's 'gemma3'"):
        shift.check_compatible("gemma3", 4, 3)


def anchors(image: Image.Image, n: int = 6) -> list[Item]:
    return [Item(id=f"a{i}", prompt=f"w{i} w{i + 1} w{i + 2}", image=image) for i in range(n)]


def test_mean_recovers_planted_direction(vlm: VLM, image: Image.Image) -> None:
    """Adding d to layer 1's output of text-only rows must add exactly +d to the mean shift."""
    planted = torch.randn(vlm.hidden_size)
    items = anchors(image)
    base = calibrate(vlm, items, layers=[1], batch_size=4)

    def plant(module: Any, args: Any, output: Any) -> Any:
        hidden = hidden_of(output)
        # text-only rows are the ones without an image token
        text_rows = ~torch.isin(current["ids"], torch.tensor(sorted(vlm.image_token_ids))).any(1)
        return with_hidden(output, hidden + text_rows[:, None, None].float() * planted)

    current: dict[str, torch.Tensor] = {}

    def remember(module: Any, args: Any, kwargs: Any) -> None:
        current["ids"] = kwargs["input_ids"]

    with HookSet() as hooks:
        hooks.forward_pre(vlm.model, remember)
        hooks.forward(vlm.layers.modules[1], plant)
        shifted = calibrate(vlm, items, layers=[1], batch_size=4)
    recovered = shifted.vector(1) - base.vector(1)
    cosine = torch.nn.functional.cosine_similarity(recovered, planted, dim=0)
    assert cosine > 0.99
    torch.testing.assert_close(recovered, planted, rtol=1e-4, atol=1e-4)


def test_calibrate_metadata_and_errors(vlm: VLM, image: Image.Image) -> None:
    shift = calibrate(vlm, anchors(image), null=NullImage.parse("noise:uniform:3"), estimator="pc1")
    assert shift.meta.estimator == "pc1"
    assert shift.meta.null_image == "noise:uniform:3"
    assert shift.meta.anchor_count == 6 and len(shift.meta.anchor_hash) == 16
    assert shift.layers == (0, 1, 2)
    with pytest.raises(CmrmError, match="empty"):
        calibrate(vlm, [])
    with pytest.raises(CmrmError, match="estimator"):
        calibrate(vlm, anchors(image), estimator="median")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="contrast 'image' needs an image"):
        calibrate(vlm, [Item(id="t", prompt="w1")], contrast="image")


def test_pc1_is_scaled_and_sign_aligned() -> None:
    gen = torch.Generator().manual_seed(0)
    direction = torch.nn.functional.normalize(torch.randn(16, generator=gen), dim=0)
    coefficients = 2.0 + 0.5 * torch.rand(200, generator=gen)
    diffs = coefficients[:, None] * direction + 0.01 * torch.randn(200, 16, generator=gen)
    vector = pc1_vector(diffs)
    torch.testing.assert_close(vector, coefficients.mean() * direction, rtol=0.02, atol=0.02)
    assert torch.dot(pc1_vector(-diffs), -direction) > 0


def test_sample_shifts_zero_for_text_rows(vlm: VLM, image: Image.Image) -> None:
    shift = sample_shifts(vlm, ["w1 w2", "w3"], [image, None], layers="0:2")
    assert shift.layers == (0, 1)
    assert shift.vectors.shape == (2, 2, vlm.hidden_size)
    assert shift.vectors[:, 0].abs().sum() > 0
    assert not shift.vectors[:, 1].any()
