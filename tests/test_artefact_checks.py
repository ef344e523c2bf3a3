"""Every artefact cmrm reads is checked on load: a shift file whose tensors do not have the shape
its metadata implies, a broken run folder, a malformed recommendation — each is one ``Error:``
line naming the file, the tensor (or field), the shape found and the shape expected; exit 1, no
traceback, through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import Result
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from cmrm.cli import app

runner = CliRunner()


def run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def one_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def shift_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real organism shift with safety axes (hidden 128, 4 layers)."""
    out = tmp_path_factory.mktemp("shift")
    result = run("calibrate", "organism", "--anchors", "organism:anchor", "--limit", "8", "-o", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "img.png"
    Image.new("RGB", (32, 32), "red").save(path)
    return path


def damaged(source: Path, target: Path, key: str, shape: tuple[int, ...]) -> Path:
    """A copy of ``source`` whose tensor ``key`` is replaced by zeros of ``shape``."""
    target.mkdir()
    (target / "shift.json").write_bytes((source / "shift.json").read_bytes())
    tensors = load_file(str(source / "shift.safetensors"))
    tensors[key] = torch.zeros(shape)
    save_file(tensors, str(target / "shift.safetensors"))
    return target


def test_the_fixture_shift_has_axes_and_loads(shift_dir: Path) -> None:
    tensors = load_file(str(shift_dir / "shift.safetensors"))
    assert {"layers.0", "axis.0", "axis_reference"} <= set(tensors)
    assert tuple(tensors["layers.0"].shape) == (128,)


@pytest.mark.parametrize(
    ("key", "shape", "expected"),
    [
        ("layers.1", (127,), "[128] (hidden_size 128"),
        ("layers.0", (2, 128), "[128] (hidden_size 128"),
        ("axis.2", (129,), "[128] (hidden_size 128"),
        ("axis_reference", (3,), "[4] (one value per layer"),
        ("axis_threshold", (5,), "[4] (one value per layer"),
        ("axis_gate", (4, 127), "[4, 128] (4 layers x hidden_size 128"),
    ],
)
def test_generate_names_the_file_the_tensor_and_both_shapes(
    tmp_path: Path, shift_dir: Path, picture: Path, key: str, shape: tuple[int, ...], expected: str
) -> None:
    bad = damaged(shift_dir, tmp_path / "bad", key, shape)
    found = "[" + ", ".join(str(n) for n in shape) + "]"
    result = run("generate", "organism", "--image", picture, "--shift", bad, "--alpha", "1", "hi")
    one_error(result, str(bad / "shift.safetensors"), repr(key), f"shape {found}", expected)


def test_an_unknown_tensor_and_bad_sizes_in_the_metadata(tmp_path: Path, shift_dir: Path) -> None:
    extra = damaged(shift_dir, tmp_path / "extra", "bias.0", (128,))
    one_error(run("generate", "organism", "hi", "--shift", extra), "unknown tensor 'bias.0'")
    meta = damaged(shift_dir, tmp_path / "meta", "layers.0", (128,))
    header = json.loads((meta / "shift.json").read_text())
    header["hidden_size"] = "128"
    (meta / "shift.json").write_text(json.dumps(header))
    one_error(run("generate", "organism", "hi", "--shift", meta), "'hidden_size' is '128'")
    (meta / "shift.json").write_bytes('{"é": 1}'.encode("latin-1"))
    one_error(run("generate", "organism", "hi", "--shift", meta), "not valid shift metadata")


@pytest.mark.parametrize("command", ["gap", "export", "eval"])
def test_every_command_that_reads_a_shift_checks_it(
    tmp_path: Path, shift_dir: Path, command: str
) -> None:
    bad = damaged(shift_dir, tmp_path / "bad", "layers.3", (127,))
    args = {
        "gap": ["gap", "organism", "--shift", bad, "-o", tmp_path / "g", "--limit", "2"],
        "export": [
            "export",
            "organism",
            "--shift",
            bad,
            "--format",
            "hf-bias",
            "-o",
            tmp_path / "x",
        ],
        "eval": [
            "eval",
            "organism",
            "--shift",
            bad,
            "--method",
            "dataset",
            "--bench",
            "organism:harmful-image",
            "--limit",
            "1",
            "-o",
            tmp_path / "r",
        ],
    }[command]
    one_error(run(*args), "'layers.3'", "shape [127], expected [128]")


@pytest.mark.parametrize(
    ("rec", "fragment"),
    [
        ({"alpha": "one", "operator": "add"}, "'recommended.alpha' is 'one', expected a finite"),
        ({"alpha": 0.5, "operator": 3}, "'recommended.operator' is 3, expected a name"),
        ([0.5], "'recommended' is [0.5], expected an object"),
    ],
)
def test_a_malformed_recommendation_is_refused_where_it_is_read(
    tmp_path: Path, shift_dir: Path, rec: object, fragment: str
) -> None:
    bad = damaged(shift_dir, tmp_path / "rec", "layers.0", (128,))
    header = json.loads((bad / "shift.json").read_text())
    header["recommended"] = rec
    (bad / "shift.json").write_text(json.dumps(header))
    one_error(run("generate", "organism", "hi", "--shift", bad), str(bad / "shift.json"), fragment)
