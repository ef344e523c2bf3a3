"""Models placed with a device map that offloads part of them (accelerate's cpu/disk offload hooks):
capture, calibration, dataset-level and sample-level steering give the un-offloaded outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cmrm.base.errors import ConfigError
from cmrm.calibration.capture import capture_states
from cmrm.calibration.estimate import calibrate
from cmrm.cli import app
from cmrm.data.items import Item
from cmrm.generation.generate import GenerationOptions, generate_items
from cmrm.interventions import Intervention
from cmrm.models import load_vlm
from cmrm.models.placement import Placement, parse_max_memory, rank_gpus

LM = "model.language_model"
OFFLOADED = {
    "model.vision_tower": "disk",  # the first parameters of the model end up on 'meta'
    "model.multi_modal_projector": "cpu",
    f"{LM}.embed_tokens": "cpu",
    f"{LM}.layers.0": "cpu",
    f"{LM}.layers.1": "disk",
    f"{LM}.layers.2": "disk",
    f"{LM}.norm": "cpu",
    f"{LM}.rotary_emb": "cpu",
    "lm_head": "cpu",
}


def _items() -> list[Item]:
    colours = ["red", "blue", "green"]
    out = [
        Item(f"q{i}", f"what is this w{i} w{i + 3}", image=Image.new("RGB", (30, 30), c))
        for i, c in enumerate(colours)
    ]
    return [*out, Item("t", "what is w7", image=None)]


def _outputs(vlm: object, items: list[Item]) -> dict[str, object]:
    options = GenerationOptions(max_new_tokens=5)
    images = [i.image for i in items]
    prompts = [i.prompt for i in items]
    shift = calibrate(vlm, items[:3], batch_size=2)  # type: ignore[arg-type]
    return {
        "states": capture_states(vlm, prompts, images),  # type: ignore[arg-type]
        "shift": shift.vectors,
        "dataset": generate_items(
            vlm,  # type: ignore[arg-type]
            items,
            Intervention("dataset", alpha=2.0, shift=shift),
            options,
            batch_size=2,
        ),
        "sample": generate_items(
            vlm,  # type: ignore[arg-type]
            items,
            Intervention("sample", alpha=2.0, positions="last"),
            options,
            batch_size=2,
        ),
        "none": generate_items(vlm, items, None, options, batch_size=2),  # type: ignore[arg-type]
    }


def _same(a: dict[str, object], b: dict[str, object]) -> None:
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(value, b[key], rtol=0, atol=0, msg=key)
        else:
            assert value == b[key], key
    assert a["dataset"] != a["none"]  # the steering did change something


def test_offloaded_layers_give_the_same_outputs(saved_llava: Path, tmp_path: Path) -> None:
    plain = load_vlm(str(saved_llava))
    placed = load_vlm(
        str(saved_llava), device_map=json.dumps(OFFLOADED), offload_folder=str(tmp_path / "off")
    )
    params = dict(placed.model.named_parameters())
    assert params[f"{LM}.layers.1.mlp.up_proj.weight"].device.type == "meta"
    assert next(iter(params.values())).device.type == "meta"
    assert placed.device == torch.device("cpu")  # inputs never go to 'meta'
    items = _items()
    _same(_outputs(plain, items), _outputs(placed, items))


def test_organism_dispatched_with_max_memory(tmp_path: Path) -> None:
    plain = load_vlm("organism")
    placed = load_vlm("organism", max_memory="cpu=2MB", offload_folder=str(tmp_path / "off"))
    where = set(placed.model.hf_device_map.values())
    assert where == {"cpu", "disk"}, placed.model.hf_device_map
    with pytest.raises(ConfigError, match="no part of the model fits"):
        load_vlm("organism", max_memory="cpu=100KB", offload_folder=str(tmp_path / "off2"))
    items = [Item("o", "how do i make a weapon", image=Image.new("RGB", (32, 32), "red"))]
    options = GenerationOptions(max_new_tokens=6)
    for steering in (None, Intervention("sample", alpha=1.0)):
        assert generate_items(placed, items, steering, options) == generate_items(
            plain, items, steering, options
        )


def test_generate_cli_with_a_device_map(saved_llava: Path, tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    Image.new("RGB", (30, 30), "red").save(image)
    common = ["generate", str(saved_llava), "what is this", "--image", str(image)]
    common += ["--max-new-tokens", "4"]
    plain = CliRunner().invoke(app, [*common, "--sample-level"])
    placed = CliRunner().invoke(
        app,
        [
            *common,
            "--sample-level",
            "--device-map",
            json.dumps(OFFLOADED),
            "--offload-folder",
            str(tmp_path / "off"),
        ],
    )
    assert plain.exit_code == 0 and placed.exit_code == 0, placed.output
    assert plain.stdout == placed.stdout
    bad = CliRunner().invoke(app, [*common, "--max-memory", "cpu=lots"])
    assert bad.exit_code == 1 and "not like 20GiB" in bad.output


def test_placement_options_are_checked_before_loading(tmp_path: Path) -> None:
    assert Placement.parse("auto").device_map == "auto"
    assert Placement.parse(None, None, "0=20GiB,cpu=64GiB").max_memory == {
        0: "20GiB",
        "cpu": "64GiB",
    }
    assert Placement.parse("cuda").from_pretrained_kwargs() == {}
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"model": 0, "lm_head": "cpu"}))
    assert Placement.parse(None, str(mapping)).device_map == {"model": 0, "lm_head": "cpu"}
    for args, message in [
        (("cuda", "auto"), "not both"),
        ((None, "everywhere"), "one of auto"),
        ((None, "{not json"), "not valid JSON"),
        ((None, '{"model": true}'), "not a device"),
        ((None, None, None, "off"), "only applies"),
        ((None, '{"model": "disk"}'), "--offload-folder"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Placement.parse(*args)  # type: ignore[arg-type]
    for text, message in [
        ("gpu0=1GiB", "not a GPU index"),
        ("0", "DEVICE=SIZE"),
        ("0=big", "20GiB"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_max_memory(text)
    assert rank_gpus(1, 2, 8) == [4, 5, 6, 7] and rank_gpus(0, 1, 1) == [0]
    with pytest.raises(ConfigError, match="at least one GPU per rank"):
        rank_gpus(0, 4, 2)
