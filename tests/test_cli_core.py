"""The core CLI commands, end to end on a saved tiny model directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from cmrm.calibration.shift import ShiftVectors
from cmrm.cli import app

runner = CliRunner()


@pytest.fixture
def anchors(tmp_path: Path) -> Path:
    lines = []
    for i, colour in enumerate(["red", "blue", "green"]):
        Image.new("RGB", (30, 30), colour).save(tmp_path / f"{i}.png")
        lines.append(json.dumps({"id": f"a{i}", "prompt": f"w{i} w{i + 1}", "image": f"{i}.png"}))
    path = tmp_path / "anchors.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_inspect(saved_llava: Path) -> None:
    result = runner.invoke(app, ["inspect", str(saved_llava)])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["family"] == "llava"
    assert info["decoder_path"] == "model.language_model.layers"
    assert info["num_layers"] == 3 and info["hidden_size"] == 32
    assert info["image_tokens_per_image"] == 4


def test_calibrate_then_generate(saved_llava: Path, anchors: Path, tmp_path: Path) -> None:
    out = tmp_path / "shift"
    result = runner.invoke(
        app,
        [
            "calibrate",
            str(saved_llava),
            "--anchors",
            str(anchors),
            "-o",
            str(out),
            "--estimator",
            "pc1",
            "--layers",
            "1:3",
            "--batch-size",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    shift = ShiftVectors.load(out)
    assert shift.layers == (1, 2) and shift.meta.anchor_count == 3
    assert shift.meta.estimator == "pc1"
    image = anchors.parent / "0.png"
    for extra in (["--shift", str(out)], ["--sample-level", "--positions", "last"], []):
        result = runner.invoke(
            app,
            [
                "generate",
                str(saved_llava),
                "--image",
                str(image),
                "--max-new-tokens",
                "4",
                *extra,
                "w1 w2",
            ],
        )
        assert result.exit_code == 0, result.output
        assert result.stdout.strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["calibrate", "MODEL", "--anchors", "missing.jsonl"], "does not exist"),
        (["calibrate", "MODEL", "--anchors", "ANCHORS", "--null", "fog"], "cannot parse null"),
        (["calibrate", "MODEL", "--anchors", "ANCHORS", "--layers", "9"], "out of range"),
        (["generate", "MODEL", "--image", "nope.png", "w1"], "does not exist"),
        (["generate", "MODEL", "--shift", "nowhere", "w1"], "shift.json is missing"),
        (["inspect", "/no/such/model/dir"], "local model folder /no/such/model/dir does not exist"),
    ],
)
def test_errors_are_one_line_messages(
    saved_llava: Path, anchors: Path, args: list[str], message: str
) -> None:
    args = [
        str(saved_llava) if a == "MODEL" else str(anchors) if a == "ANCHORS" else a for a in args
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "Error:" in result.stderr and message in result.stderr
    assert "Traceback" not in result.output


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("inspect", "calibrate", "generate"):
        assert command in result.stdout


def test_gap_writes_metrics_figures_and_summary(
    saved_llava: Path, anchors: Path, tmp_path: Path
) -> None:
    shift_dir = tmp_path / "shift"
    result = runner.invoke(
        app, ["calibrate", str(saved_llava), "--anchors", str(anchors), "-o", str(shift_dir)]
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "gap"
    result = runner.invoke(
        app,
        [
            "gap",
            str(saved_llava),
            "--data",
            str(anchors),
            "-o",
            str(out),
            "--null",
            "blank,noise",
            "--shift",
            str(shift_dir),
            "--alpha",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["layers"]) == 3
    for name in ("summary.md", "figures/pca.png", "figures/layers.png"):
        assert (out / name).stat().st_size > 0
    bad = runner.invoke(
        app,
        ["gap", str(saved_llava), "--data", str(anchors), "-o", str(out), "--null", "blank,blank"],
    )
    assert bad.exit_code == 1 and "repeat" in bad.stderr
