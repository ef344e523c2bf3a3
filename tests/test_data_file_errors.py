"""A generic data file that is not what the format says — a row without its ``image`` key, a file
that is not UTF-8, an image passed where a data file goes — is one ``Error:`` line naming the file
(and line), exit 1, no traceback, and no run folder left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from PIL import Image
from typer.testing import CliRunner

from cmrm.base.errors import DataError
from cmrm.cli import app
from cmrm.data.items import read_jsonl

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


def test_a_row_without_its_image_key_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    rows = [{"id": "a", "prompt": "w1 w2", "image": None}, {"id": "b", "prompt": "w3"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"d.jsonl:2: missing key\(s\) \['image'\]"):
        list(read_jsonl(data))
    out = tmp_path / "run"
    result = run("eval", "organism", "--bench", data, "--method", "sample", "-o", out)
    one_error(result, f"{data}:2", "'image'", '"image": null')
    assert not out.exists()


def test_an_explicit_null_image_is_a_text_only_row(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "a", "prompt": "w1", "image": None}) + "\n")
    assert [item.image for item in read_jsonl(data)] == [None]


def test_a_latin1_file_names_the_line_the_byte_and_the_fix(tmp_path: Path) -> None:
    data = tmp_path / "latin.jsonl"
    good = json.dumps({"id": "a", "prompt": "w1", "image": None}) + "\n"
    data.write_bytes(
        good.encode() + '{"id": "b", "prompt": "café", "image": null}\n'.encode("latin-1")
    )
    out = tmp_path / "run"
    result = run("eval", "organism", "--bench", data, "--method", "none", "-o", out)
    one_error(result, f"{data}:2 is not UTF-8", "0xe9", "iconv")
    assert not out.exists()
    one_error(run("gap", "organism", "--data", data, "-o", tmp_path / "g"), "not UTF-8")


@pytest.mark.parametrize("flag", ["--anchors", "--bench"])
def test_an_image_passed_as_a_data_file(tmp_path: Path, flag: str) -> None:
    picture = tmp_path / "img.png"
    Image.new("RGB", (8, 8), "red").save(picture)
    if flag == "--anchors":
        result = run("calibrate", "organism", "--anchors", picture, "-o", tmp_path / "s")
    else:
        result = run(
            "eval", "organism", "--bench", picture, "--method", "none", "-o", tmp_path / "r"
        )
    one_error(result, f"{picture} is a PNG image, not a JSONL data file")
    assert not (tmp_path / "s").exists() and not (tmp_path / "r").exists()
