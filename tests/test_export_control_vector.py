"""`cmrm export --format gguf-control-vector`: the layout llama.cpp loads, read back with `gguf`."""

from __future__ import annotations

import logging
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cmrm.base.errors import CmrmError
from cmrm.calibration.shift import ShiftMeta, ShiftVectors
from cmrm.cli import app
from cmrm.export.control_vector import layer0_fraction, llama_cpp_commands, write_control_vector

runner = CliRunner()


def organism_like_shift(layers: tuple[int, ...] = (0, 1, 2, 3)) -> ShiftVectors:
    """A shift shaped like one calibrated on the organism (4 layers, hidden 128)."""
    meta = ShiftMeta(
        source_model="organism",
        model_type="llava",
        hidden_size=128,
        num_layers=4,
        anchor_hash="abc123",
    )
    torch.manual_seed(1)
    return ShiftVectors(layers, torch.randn(len(layers), 128), meta)


def read(path: Path) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    reader = gguf.GGUFReader(path)
    fields = {name: field.contents() for name, field in reader.fields.items()}
    tensors = {}
    for tensor in reader.tensors:
        assert tensor.tensor_type == gguf.GGMLQuantizationType.F32, tensor.name
        tensors[tensor.name] = np.array(tensor.data)
    return fields, tensors


def test_layout_values_and_metadata(tmp_path: Path) -> None:
    shift = organism_like_shift((1, 2, 3))
    written = write_control_vector(shift, tmp_path / "cv.gguf", alpha=0.75, model_hint="llama")
    assert written.layers == (1, 2, 3) and written.dropped_layer0_fraction is None
    fields, tensors = read(tmp_path / "cv.gguf")
    assert fields["general.architecture"] == "controlvector"
    assert fields["controlvector.model_hint"] == "llama"
    assert fields["controlvector.layer_count"] == 3
    assert fields["cmrm.alpha"] == pytest.approx(0.75)
    assert fields["cmrm.source_model"] == "organism"
    assert sorted(tensors) == ["direction.1", "direction.2", "direction.3"]
    for layer in (1, 2, 3):
        values = tensors[f"direction.{layer}"]
        assert values.shape == (128,) and values.dtype == np.float32
        np.testing.assert_allclose(values, 0.75 * shift.vector(layer).numpy(), rtol=1e-6)
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"


def test_layer0_is_refused_unless_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shift = organism_like_shift()
    fraction = layer0_fraction(shift)
    expected = float(shift.vectors[0].norm() / shift.vectors.norm())
    assert fraction == pytest.approx(expected)
    with pytest.raises(CmrmError, match=r"layer 0 \(\d+\.\d% of its norm\).*--drop-layer0"):
        write_control_vector(shift, tmp_path / "cv.gguf", model_hint="llama")
    assert not (tmp_path / "cv.gguf").exists()
    with caplog.at_level(logging.WARNING, logger="cmrm.export.control_vector"):
        written = write_control_vector(
            shift, tmp_path / "cv.gguf", model_hint="llama", drop_layer0=True
        )
    assert f"{100 * fraction:.1f}%" in caplog.text
    assert written.dropped_layer0_fraction == pytest.approx(fraction)
    _, tensors = read(tmp_path / "cv.gguf")
    assert sorted(tensors) == ["direction.1", "direction.2", "direction.3"]
    with pytest.raises(CmrmError, match="only layer 0"):
        write_control_vector(
            organism_like_shift((0,)), tmp_path / "zero.gguf", model_hint="llama", drop_layer0=True
        )


def test_cli_writes_the_file_and_prints_the_llama_cpp_commands(tmp_path: Path) -> None:
    shift_dir = organism_like_shift().save(tmp_path / "shift")
    out = tmp_path / "organism-cv.gguf"
    base = ["export", "organism", "--shift", str(shift_dir), "--format", "gguf-control-vector"]
    refused = runner.invoke(app, [*base, "-o", str(out)])
    assert refused.exit_code == 1
    assert "Error:" in refused.output and "--drop-layer0" in refused.output
    assert not out.exists()
    result = runner.invoke(app, [*base, "-o", str(out), "--alpha", "2", "--drop-layer0"])
    assert result.exit_code == 0, result.output
    for line in llama_cpp_commands(out):
        assert line in result.stdout
    assert f"llama-server -m MODEL.gguf --mmproj MMPROJ.gguf --control-vector {out}" in (
        result.stdout
    )
    fields, tensors = read(out)
    assert fields["controlvector.model_hint"] == "llama"  # the organism's decoder
    np.testing.assert_allclose(
        tensors["direction.2"], 2 * ShiftVectors.load(shift_dir).vector(2).numpy(), rtol=1e-6
    )


def test_cli_refuses_a_shift_of_another_model(tmp_path: Path, saved_llava: Path) -> None:
    shift_dir = organism_like_shift((1, 2)).save(tmp_path / "shift")
    result = runner.invoke(
        app,
        [
            "export",
            str(saved_llava),
            "--shift",
            str(shift_dir),
            "--format",
            "gguf-control-vector",
            "-o",
            str(tmp_path / "x.gguf"),
        ],
    )
    assert result.exit_code == 1
    assert "does not fit this model" in result.output
    bad = runner.invoke(
        app,
        [
            "export",
            "organism",
            "--shift",
            str(shift_dir),
            "--format",
            "onnx",
            "-o",
            str(tmp_path / "x"),
        ],
    )
    assert bad.exit_code == 2 and "gguf-control-vector" in bad.output
