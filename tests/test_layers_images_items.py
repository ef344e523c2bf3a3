"""Layer location, null images, image loading and the generic JSONL format."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from torch import nn

from cmrm.base.errors import DataError, LayerResolutionError, UnsupportedModelError
from cmrm.data.images import NullImage, load_image
from cmrm.data.items import Item, read_jsonl
from cmrm.models import family_for
from cmrm.models.layers import locate_decoder_layers, parse_layer_spec

from .tiny_models import tiny_llava


def test_locates_text_decoder_even_when_vision_is_deeper() -> None:
    model = tiny_llava(text_layers=2, vision_layers=4)
    layers = locate_decoder_layers(model)
    assert layers.path == "model.language_model.layers"
    assert len(layers) == 2 and layers.hidden_size == 32


def test_override_and_errors() -> None:
    model = tiny_llava()
    override = locate_decoder_layers(model, "model.vision_tower.encoder.layers")
    assert len(override) == 1
    with pytest.raises(LayerResolutionError, match="no submodule"):
        locate_decoder_layers(model, "model.nope")
    with pytest.raises(LayerResolutionError, match="expected an nn.ModuleList"):
        locate_decoder_layers(model, "model.language_model")
    model.model.language_model.extra = nn.ModuleList(nn.Identity() for _ in range(3))
    with pytest.raises(LayerResolutionError, match="found 2"):
        locate_decoder_layers(model)


def test_layer_specs() -> None:
    layers = locate_decoder_layers(tiny_llava(text_layers=6))
    assert layers.resolve("all") == (0, 1, 2, 3, 4, 5)
    assert layers.resolve("2:4") == (2, 3)
    assert layers.resolve("1,3") == (1, 3)
    assert layers.resolve(-1) == (5,)
    assert parse_layer_spec(":2", 6) == [0, 1]
    with pytest.raises(LayerResolutionError, match="out of range"):
        layers.resolve([6])
    with pytest.raises(LayerResolutionError, match="cannot parse"):
        layers.resolve("a-b")
    with pytest.raises(LayerResolutionError, match="repeat"):
        layers.resolve([1, 1])


def test_unsupported_family_lists_supported() -> None:
    with pytest.raises(UnsupportedModelError, match="llava.*qwen2_vl"):
        family_for("gpt2")
    with pytest.raises(UnsupportedModelError, match="cross-attention"):
        family_for("mllama")


def test_null_images() -> None:
    blank = NullImage.parse("blank")
    assert blank.spec == "blank:white"
    assert blank.render((5, 4)).getpixel((0, 0)) == (255, 255, 255)
    assert NullImage.parse("blank:#102030").render((2, 2)).getpixel((1, 1)) == (16, 32, 48)
    noise = NullImage.parse("noise:uniform:7")
    assert noise.spec == "noise:uniform:7"
    assert (
        noise.render((8, 8)).tobytes()
        == NullImage.parse("noise:uniform:7").render((8, 8)).tobytes()
    )
    assert (
        noise.render((8, 8)).tobytes()
        != NullImage.parse("noise:uniform:8").render((8, 8)).tobytes()
    )
    assert NullImage.parse("noise").spec == "noise:gaussian:0"
    mean = NullImage.parse("mean").render((2, 2), image_mean=(0.5, 0.25, 0.0))
    assert mean.getpixel((0, 0)) == (128, 64, 0)
    assert blank.like(Image.new("RGB", (13, 7))).size == (13, 7)
    for bad in ("fog", "blank:notacolour", "noise:cauchy", "noise:gaussian:x", "mean:1"):
        with pytest.raises(DataError):
            NullImage.parse(bad)


def test_load_image_decodes_by_content(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 5), "green").save(buffer, format="WEBP")
    fake_png = tmp_path / "webp_named.png"
    fake_png.write_bytes(buffer.getvalue())
    loaded = load_image(fake_png)
    assert loaded is not None and loaded.size == (6, 5) and loaded.mode == "RGB"
    with pytest.raises(DataError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.png"):
        load_image(tmp_path / "junk.png")


def test_read_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    rows = [
        {"id": "a", "prompt": "p1", "image": "img/a.png", "kind": "harmful", "category": "c"},
        {"id": "b", "prompt": "p2", "image": None, "choices": ["x", "y"], "answer": 1},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    items = list(read_jsonl(path))
    assert items[0].image == tmp_path / "img" / "a.png" and items[0].kind == "harmful"
    assert items[1].image is None and items[1].choices == ("x", "y") and items[1].answer == 1
    assert items[1].to_json()["choices"] == ["x", "y"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{bad json", ":2: not valid JSON"),
        ('{"prompt": "x", "image": null}', ":2: missing key"),
        ('{"id": "a", "prompt": "x", "image": null}', ":2: duplicate id"),
        ('{"id": "c", "prompt": "x", "image": 3}', ":2: 'image' must be"),
        ('{"id": "c", "prompt": "x", "image": null, "kind": "evil"}', ":2: .*kind must be"),
        ("[1, 2]", ":2: expected a JSON object"),
    ],
)
def test_read_jsonl_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"id": "a", "prompt": "x", "image": null}\n' + line + "\n")
    with pytest.raises(DataError, match=message):
        list(read_jsonl(path))


def test_item_validation() -> None:
    with pytest.raises(DataError):
        Item(id="", prompt="x")
    in_memory = Item(id="m", prompt="x", image=Image.new("RGB", (3, 2)))
    assert in_memory.to_json()["image"] == "<in-memory 3x2>"
