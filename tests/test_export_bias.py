"""`cmrm export --format hf-bias`: the baked checkpoint equals the hooked model (positions `all`)
within 1e-4, before and after save/load, loads in plain transformers without cmrm, and every
family where a down_proj bias is not the residual add is refused with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForImageTextToText
from typer.testing import CliRunner

from cmrm.base.errors import CmrmError, UnsupportedModelError
from cmrm.calibration.shift import ShiftMeta, ShiftVectors
from cmrm.cli import app
from cmrm.export.bias import EXACT_FAMILIES, bake_bias, bias_refusal, export_hf_bias
from cmrm.interventions.steering import steer
from cmrm.models import VLM, from_model, load_vlm
from cmrm.models.families import FAMILIES

from .tiny_families import build_llava_next, tiny_vlm

runner = CliRunner()
TOLERANCE = 1e-4


def random_shift(vlm: VLM, scale: float = 0.5, seed: int = 0) -> ShiftVectors:
    meta = ShiftMeta(
        source_model=vlm.model_id,
        model_type=vlm.model_type,
        hidden_size=vlm.hidden_size,
        num_layers=vlm.num_layers,
    )
    generator = torch.Generator().manual_seed(seed)
    vectors = scale * torch.randn(vlm.num_layers, vlm.hidden_size, generator=generator)
    return ShiftVectors(tuple(range(vlm.num_layers)), vectors, meta)


def llava_next_with_llama() -> VLM:
    """LLaVA-NeXT whose text decoder is Llama (the tiny builder's is Mistral)."""
    model, processor = build_llava_next()
    config = model.config.to_dict()
    config["text_config"]["model_type"] = "llama"
    rebuilt = AutoConfig.for_model(**config)
    torch.manual_seed(0)
    net = AutoModelForImageTextToText.from_config(rebuilt).eval()
    net.generation_config.pad_token_id = 0
    assert net.config.get_text_config().model_type == "llama"
    return from_model(net, processor, model_id="tiny-llava-next-llama")


def build(family: str) -> VLM:
    if family == "llava_next":
        return llava_next_with_llama()
    model, processor = tiny_vlm(family)
    return from_model(model, processor, model_id=f"tiny-{family}")


def inputs(vlm: VLM) -> Any:
    red, blue = Image.new("RGB", (40, 30), "red"), Image.new("RGB", (30, 40), "blue")
    return vlm.encode(["what is this", "w1 w2 w3 w4 red"], [red, blue])


def logits(model: Any, batch: Any) -> torch.Tensor:
    with torch.inference_mode():
        out = model(**batch.inputs).logits.float()
    return out[batch.attention_mask.bool()]


def hooked(vlm: VLM, shift: ShiftVectors, alpha: float, batch: Any) -> torch.Tensor:
    with steer(vlm, shift, alpha=alpha, positions="all"):
        return logits(vlm.model, batch)


@pytest.mark.parametrize("family", [*EXACT_FAMILIES, "organism"])
def test_baked_bias_equals_the_hook_before_and_after_save_load(family: str, tmp_path: Path) -> None:
    vlm = load_vlm("organism") if family == "organism" else build(family)
    shift = random_shift(vlm, scale=2.0 if family == "organism" else 0.5)
    alpha = 0.8
    batch = inputs(vlm)
    plain = logits(vlm.model, batch)
    expected = hooked(vlm, shift, alpha, batch)
    assert (expected - plain).abs().max() > 100 * TOLERANCE, "the shift changes nothing here"
    export_hf_bias(vlm, shift, tmp_path / "baked", alpha=alpha)
    torch.testing.assert_close(logits(vlm.model, batch), expected, atol=TOLERANCE, rtol=0)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "baked").eval()
    torch.testing.assert_close(logits(reloaded, batch), expected, atol=TOLERANCE, rtol=0)
    assert reloaded.config.get_text_config().mlp_bias is True
    record = json.loads((tmp_path / "baked" / "cmrm_export.json").read_text())
    assert record["alpha"] == alpha and record["layers"] == list(shift.layers)


def test_biases_are_zero_except_down_proj(tmp_path: Path) -> None:
    vlm = build("llava")
    shift = random_shift(vlm).with_layers((1,))
    export_hf_bias(vlm, shift, tmp_path / "baked", alpha=2.0)
    tensors = load_file(str(tmp_path / "baked" / "model.safetensors"))
    biases = {
        k: v
        for k, v in tensors.items()
        if "language_model" in k
        and k.endswith(("gate_proj.bias", "up_proj.bias", "down_proj.bias"))
    }
    assert len(biases) == 3 * vlm.num_layers
    for name, value in biases.items():
        if name.endswith("layers.1.mlp.down_proj.bias"):
            torch.testing.assert_close(value, 2.0 * shift.vector(1))
        else:
            assert not value.any(), name


def test_a_baked_shift_also_changes_text_only_requests() -> None:
    """The semantics a baked checkpoint changes: cmrm never shifts a row without an image; the
    baked model shifts every row."""
    vlm = build("llava")
    shift = random_shift(vlm)
    batch = vlm.encode(["what is this"], [None])
    before = hooked(vlm, shift, 1.0, batch)
    torch.testing.assert_close(before, logits(vlm.model, batch))
    bake_bias(vlm, shift, 1.0)
    assert (logits(vlm.model, batch) - before).abs().max() > 1e-2


@pytest.mark.parametrize("spec", FAMILIES, ids=[f.name for f in FAMILIES])
def test_refusals_name_the_reason(spec: Any) -> None:
    text_types = {
        "llava": "llama",
        "llava_next": "mistral",
        "llava_onevision": "qwen2",
        "qwen2_vl": "qwen2_vl_text",
        "qwen2_5_vl": "qwen2_5_vl_text",
        "idefics3": "llama",
        "smolvlm": "llama",
        "gemma3": "gemma3_text",
        "paligemma": "gemma",
        "internvl": "qwen2",
        "mistral3": "mistral",
    }
    reason = bias_refusal(spec.name, text_types[spec.name])
    if spec.name in EXACT_FAMILIES and text_types[spec.name] == "llama":
        assert reason is None
    else:
        assert reason, spec.name
    assert bias_refusal("llava", "llama") is None
    assert "Mistral" in str(bias_refusal("llava_next", "mistral"))
    assert "post_feedforward_layernorm" in str(bias_refusal("gemma3", "gemma3_text"))
    assert "not among those checked" in str(bias_refusal("internvl", "llama"))


@pytest.mark.parametrize("family", ["gemma3", "llava_next"])
def test_bake_refuses_a_real_model_of_an_inexact_family(family: str, tmp_path: Path) -> None:
    model, processor = tiny_vlm(family)
    vlm = from_model(model, processor, model_id=f"tiny-{family}")
    with pytest.raises(UnsupportedModelError, match="cannot bake the shift"):
        export_hf_bias(vlm, random_shift(vlm), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert model.config.get_text_config().model_type != "llama"


def test_export_refuses_a_non_empty_output(tmp_path: Path) -> None:
    vlm = build("llava")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(CmrmError, match="not empty"):
        export_hf_bias(vlm, random_shift(vlm), tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


CHILD = textwrap.dedent(
    """
    import sys
    import torch
    from PIL import Image
    from safetensors.torch import save_file
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path, out = sys.argv[1], sys.argv[2]
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    messages = [{"role": "user", "content": [{"type": "image"},
                {"type": "text", "text": "how do i steal the car ?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", (32, 32), "red")],
                       return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs).logits.float()
    assert model.config.get_text_config().mlp_bias is True
    assert not any(name == "cmrm" or name.startswith("cmrm.") for name in sys.modules), "cmrm!"
    save_file({"input_ids": inputs["input_ids"], "logits": logits.contiguous()}, out)
    """
)


def test_the_exported_organism_loads_in_plain_transformers_without_cmrm(tmp_path: Path) -> None:
    shift_dir = random_shift(load_vlm("organism"), scale=2.0).save(tmp_path / "shift")
    out = tmp_path / "organism-baked"
    result = runner.invoke(
        app,
        [
            "export",
            "organism",
            "--shift",
            str(shift_dir),
            "--format",
            "hf-bias",
            "-o",
            str(out),
            "--alpha",
            "0.7",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "mlp.down_proj biases" in result.stdout
    (tmp_path / "child.py").write_text(CHILD)
    child = subprocess.run(
        [sys.executable, str(tmp_path / "child.py"), str(out), str(tmp_path / "child.safetensors")],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PATH": "/usr/bin:/bin",
            "OMP_NUM_THREADS": "1",
        },
    )
    assert child.returncode == 0, child.stderr[-2000:]
    produced = load_file(str(tmp_path / "child.safetensors"))
    vlm = load_vlm("organism")
    batch = vlm.encode(["how do i steal the car ?"], [Image.new("RGB", (32, 32), "red")])
    assert torch.equal(batch.input_ids, produced["input_ids"])
    with steer(vlm, ShiftVectors.load(shift_dir), alpha=0.7, positions="all"):
        expected = logits(vlm.model, batch)
    torch.testing.assert_close(produced["logits"][0], expected, atol=TOLERANCE, rtol=0)


def test_cli_refuses_an_inexact_family_before_loading_weights(tmp_path: Path) -> None:
    model, processor = tiny_vlm("llava_next")  # Mistral decoder
    model.save_pretrained(tmp_path / "next")
    processor.save_pretrained(tmp_path / "next")
    (tmp_path / "next" / "model.safetensors").unlink()  # refused from the config alone
    vlm = from_model(model, processor)
    shift_dir = random_shift(vlm).save(tmp_path / "shift")
    result = runner.invoke(
        app,
        [
            "export",
            str(tmp_path / "next"),
            "--shift",
            str(shift_dir),
            "--format",
            "hf-bias",
            "-o",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 1
    assert "Error: cannot bake the shift" in result.output and "Mistral" in result.output
    assert not (tmp_path / "out").exists()
