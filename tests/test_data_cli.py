"""``cmrm bench list`` and ``cmrm bench show``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

import cmrm.cli.bench  # noqa: F401  (registers the bench commands)
from cmrm.cli.app import app

FIX = Path(__file__).parent / "fixtures" / "benchmarks"
runner = CliRunner()


def test_list_names_every_benchmark_with_source_and_licence() -> None:
    result = runner.invoke(app, ["bench", "list"])
    assert result.exit_code == 0, result.output
    rows = {line.split("\t")[0]: line.split("\t") for line in result.stdout.splitlines()}
    assert rows["vlsafe"][2].startswith("hf://datasets/YangyiYY/LVLM_NLF")
    assert rows["mm-safetybench"][3] == "CC BY-NC 4.0, research use only"
    assert "organism:anchor" in rows and "jsonl" in rows


def test_show_prints_json_lines_and_count_without_images() -> None:
    args = ["bench", "show", "vlsafe", "--root", str(FIX / "vlsafe"), "--limit", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["id"] for row in lines] == ["0", "1"]
    assert lines[0]["image"].endswith("train2017/000000000101.jpg")
    assert "2 items" in result.stderr


def test_show_options_and_split_spec() -> None:
    root = str(FIX / "mm_safetybench")
    result = runner.invoke(
        app,
        [
            "bench",
            "show",
            "mm-safetybench:eval",
            "--root",
            root,
            "--option",
            "variant=SD",
            "--option",
            "tiny=yes",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows and all("/SD/" in row["image"] for row in rows) and len(rows) < 13
    bad = runner.invoke(
        app, ["bench", "show", "mm-safetybench", "--root", root, "--option", "tiny"]
    )
    assert bad.exit_code == 1 and "KEY=VALUE" in bad.stderr and "variant" in bad.stderr
    unknown = runner.invoke(
        app, ["bench", "show", "mm-safetybench", "--root", root, "--option", "x=1"]
    )
    assert unknown.exit_code == 1 and "valid options: image_root, tiny, variant" in unknown.stderr


def test_show_unknown_name_suggests() -> None:
    result = runner.invoke(app, ["bench", "show", "figstp"])
    assert result.exit_code == 1
    assert "Did you mean 'figstep'" in result.stderr


def test_check_images_passes_then_names_the_first_bad_image(tmp_path: Path) -> None:
    root = tmp_path / "mm_vet"
    shutil.copytree(FIX / "mm_vet", root)
    ok = runner.invoke(app, ["bench", "show", "mm-vet", "--root", str(root), "--check-images"])
    assert ok.exit_code == 0, ok.output
    (root / "images/v1_2.jpg").write_bytes(b"not an image")
    bad = runner.invoke(app, ["bench", "show", "mm-vet", "--root", str(root), "--check-images"])
    assert bad.exit_code == 1
    assert "item 'v1_2'" in bad.stderr and "v1_2.jpg cannot be decoded" in bad.stderr
    assert bad.stdout == ""
    missing = runner.invoke(
        app, ["bench", "show", "vlsafe", "--root", str(FIX / "vlsafe"), "--check-images"]
    )
    assert missing.exit_code == 1 and "000000000101.jpg does not exist" in missing.stderr
