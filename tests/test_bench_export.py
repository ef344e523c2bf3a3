"""``cmrm bench export``: any benchmark, the organism's in-memory suites included, written as a
generic JSONL file with image files, and read back by every command (--anchors, --bench, --data)
to the same results as the benchmark itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cmrm.base.errors import DataError
from cmrm.calibration.shift import ShiftVectors
from cmrm.cli import app
from cmrm.data import get_benchmark, load_items
from cmrm.data.images import load_image
from cmrm.data.items import Item, read_jsonl, write_jsonl

FIX = Path(__file__).parent / "fixtures" / "benchmarks"
runner = CliRunner()


def run(*args: str | Path) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def export(name: str, out: Path, *extra: str | Path) -> Path:
    path = Path(run("bench", "export", name, "-o", out, *extra).strip().splitlines()[-1])
    assert path.is_file() and path.parent == out
    return path


def test_organism_anchors_export_and_calibrate_to_the_same_shift(tmp_path: Path) -> None:
    path = export("organism:anchor", tmp_path / "ex", "--limit", "6")
    assert path.name == "organism-anchor.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 6 and all(r["image"].startswith("images/") for r in rows)
    assert rows[0]["meta"]["verb"]  # what the organism's judge reads
    run(
        "calibrate",
        "organism",
        "--anchors",
        "organism:anchor",
        "--limit",
        "6",
        "-o",
        tmp_path / "a",
    )
    run("calibrate", "organism", "--anchors", path, "-o", tmp_path / "b")
    direct, exported = ShiftVectors.load(tmp_path / "a"), ShiftVectors.load(tmp_path / "b")
    assert torch.equal(direct.vectors, exported.vectors)  # PNG is lossless: same pixels


def test_organism_suite_export_evaluates_and_measures_like_the_suite(tmp_path: Path) -> None:
    path = export("organism:harmful-image", tmp_path / "ex", "--limit", "3")
    common = ["--method", "none", "--judge", "organism", "--max-new-tokens", "6"]
    run("eval", "organism", "--bench", "organism:harmful-image", "--limit", "3", *common,
        "-o", tmp_path / "direct")  # fmt: skip
    run("eval", "organism", "--bench", path, *common, "-o", tmp_path / "exported")

    def rows(run_dir: Path, name: str) -> list[tuple[str, str]]:
        lines = (run_dir / name).read_text().splitlines()
        return [(r["id"], json.dumps(r.get("completion", r.get("judgment")))) for r in map(json.loads, lines)]  # fmt: skip

    for name in ("generations.jsonl", "judgments.jsonl"):
        assert rows(tmp_path / "direct", name) == rows(tmp_path / "exported", name)
    out = json.loads(run("gap", "organism", "--data", path, "-o", tmp_path / "gap"))
    assert out["items"] == 3


def test_upstream_export_copies_files_and_names_them_by_content(tmp_path: Path) -> None:
    path = export("mossbench", tmp_path / "ex", "--root", FIX / "mossbench")
    names = sorted(p.name for p in (tmp_path / "ex" / "images").iterdir())
    assert len(names) == 2 and names[0].endswith(".webp") != names[1].endswith(".webp")
    source = get_benchmark("mossbench").load(FIX / "mossbench")
    back = list(read_jsonl(path))
    assert [(i.id, i.prompt, i.kind, i.category, i.caption, dict(i.meta)) for i in back] == [
        (i.id, i.prompt, i.kind, i.category, i.caption, dict(i.meta)) for i in source
    ]
    for a, b in zip(source, back, strict=True):
        assert Path(str(b.image)).read_bytes() == Path(str(a.image)).read_bytes()
    shared = export("mm-vet", tmp_path / "vet", "--root", FIX / "mm_vet")
    vet = {i.id: i for i in read_jsonl(shared)}
    assert vet["v1_1"].image == vet["v1_0"].image  # one file for an image shared by two rows
    assert vet["v1_0"].reference == "-1<AND>-5"


def test_text_benchmark_export_keeps_the_null_pairing(tmp_path: Path) -> None:
    path = export("JailbreakLLMs", tmp_path / "ex", "--root", FIX / "forbidden_question_set",
                  "--split", "eval")  # fmt: skip
    assert path.name == "forbidden-questions-eval.jsonl"
    back = load_items(str(path))
    direct = load_items("forbidden-questions:eval", root=FIX / "forbidden_question_set")
    assert back == direct  # no image; meta["pair"] == "null" asks eval for a null image
    assert {i.meta["pair"] for i in back} == {"null"}


def test_write_jsonl_round_trip_and_errors(tmp_path: Path) -> None:
    picture = Image.new("RGB", (5, 4), (1, 2, 3))
    items = [
        Item("a", "p\u2028q", image=picture, kind="benign", choices=("x", "y"), answer=1),
        Item("b", "r", image=picture, meta={"nested": {"k": [1, None]}}),
        Item("c", "s"),
    ]
    path = write_jsonl(items, tmp_path / "set.jsonl")
    back = list(read_jsonl(path))
    assert back[0].image == back[1].image and back[2].image is None
    loaded = load_image(back[0].image)
    assert loaded is not None and loaded.getpixel((0, 0)) == (1, 2, 3)
    assert [(i.id, i.prompt, i.choices, i.answer, dict(i.meta)) for i in back] == [
        (i.id, i.prompt, i.choices, i.answer, dict(i.meta)) for i in items
    ]
    with pytest.raises(DataError, match="meta must hold only JSON values"):
        write_jsonl([Item("d", "t", meta={"when": object()})], tmp_path / "bad.jsonl")
    assert not (tmp_path / "bad.jsonl").exists()
    with pytest.raises(DataError, match="item 'e': image .*gone.png does not exist"):
        write_jsonl([Item("e", "u", image=tmp_path / "gone.png")], tmp_path / "bad.jsonl")


def test_bench_show_output_is_refused_with_the_way_to_export(tmp_path: Path) -> None:
    shown = tmp_path / "a.jsonl"
    shown.write_text(run("bench", "show", "organism:anchor", "--limit", "2"))
    result = runner.invoke(app, ["calibrate", "organism", "--anchors", str(shown)])
    assert result.exit_code == 1
    assert "a.jsonl:1: 'image' is '<in-memory" in result.stderr
    assert "cmrm bench export NAME -o DIR" in result.stderr
