"""`cmrm eval` passes --layers-path (and records it) when it loads the model."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from cmrm.cli import app


def test_layers_path_is_used_and_recorded(saved_llava: Path, tmp_path: Path) -> None:
    Image.new("RGB", (30, 30), "red").save(tmp_path / "a.png")
    data = tmp_path / "bench.jsonl"
    data.write_text(json.dumps({"id": "q", "prompt": "w1 w2", "image": "a.png"}) + "\n")
    base = [
        "eval",
        str(saved_llava),
        "--bench",
        str(data),
        "--method",
        "none,sample",
        "--alpha",
        "1",
        "--max-new-tokens",
        "2",
        "--judge",
        "refusal",
    ]
    bad = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "bad"), "--layers-path", "nope"])
    assert bad.exit_code == 1 and "no submodule 'nope'" in bad.stderr
    good = CliRunner().invoke(
        app, [*base, "-o", str(tmp_path / "run"), "--layers-path", "model.language_model.layers"]
    )
    assert good.exit_code == 0, good.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["config"]["layers_path"] == "model.language_model.layers"
