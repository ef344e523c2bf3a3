"""Evaluation runs with a fake generator, fake benchmarks and a fake judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from cmrm.base.errors import ConfigError, DataError
from cmrm.data.images import NullImage
from cmrm.data.items import Item
from cmrm.evaluation import (
    PAPER_ALPHAS,
    Cell,
    EvalConfig,
    RowStore,
    Summary,
    attach_null,
    bootstrap,
    check_anchor_leak,
    default_judge,
    paper_preset,
    read_rows,
    recover_tail,
)

from . import test_evaluation_fakes as fakes


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_grid_cells_and_keys() -> None:
    cfg = fakes.config()
    keys = [c.key for c in cfg.cells]
    assert keys[:5] == [
        "harm:eval::none",
        "harm:eval::dataset@0.5",
        "harm:eval::dataset@1.0",
        "harm:eval::sample@0.5",
        "harm:eval::sample@1.0",
    ]
    assert keys[5] == "harm:eval::text-only"
    assert len(keys) == 2 * (1 + 2 + 2 + 1) == len(set(keys))


def test_full_run_writes_every_file_and_the_right_metrics(tmp_path: Path) -> None:
    fakes.CALLS.clear()
    summary = fakes.run(tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["config"]["alphas"] == [0.5, 1.0]
    assert set(stored["versions"]) >= {"cmrm", "torch", "transformers"}
    gens = _lines(tmp_path / "generations.jsonl")
    judg = _lines(tmp_path / "judgments.jsonl")
    assert len(gens) == len(judg) == 6 * 11 + 6 * 6
    assert gens[0]["item"]["prompt"] == "request h 0" and "completion" in gens[0]
    assert judg[0]["judgment"]["judge"] == "fake" and judg[0]["cell"] == "harm:eval::none"
    assert fakes.CALLS == [4] and (tmp_path / "shift" / "shift.json").exists()

    cells = {c.cell.key: c for c in summary.cells}
    assert cells["harm:eval::none"].metrics["unsafe_rate"].value == 1.0
    assert cells["harm:eval::dataset@1.0"].metrics["unsafe_rate"].value == 0.0
    assert cells["harm:eval::text-only"].metrics["refusal_rate"].value == 1.0
    assert cells["harm:eval::none"].metrics["over_refusal_rate"].value is None
    assert cells["benign::sample@1.0"].metrics["over_refusal_rate"].value == 0.5
    assert cells["benign::sample@1.0"].metrics["unsafe_rate"].n == 0
    assert cells["harm:eval::none"].n == cells["harm:eval::none"].expected == 11
    on_disk = Summary.from_json(json.loads((tmp_path / "summary.json").read_text()))
    assert on_disk == summary


def test_resume_of_a_finished_run_adds_nothing_and_reuses_the_shift(tmp_path: Path) -> None:
    fakes.run(tmp_path)
    before = (
        (tmp_path / "generations.jsonl").read_bytes(),
        (tmp_path / "judgments.jsonl").read_bytes(),
    )
    fakes.CALLS.clear()
    fakes.run(tmp_path, batch_size=5)  # a runtime key may change
    after = (
        (tmp_path / "generations.jsonl").read_bytes(),
        (tmp_path / "judgments.jsonl").read_bytes(),
    )
    assert before == after and fakes.CALLS == []


def test_changed_config_is_an_error_naming_the_keys(tmp_path: Path) -> None:
    fakes.run(tmp_path, limit=2)
    with pytest.raises(ConfigError, match=r"alphas, limit") as err:
        fakes.run(tmp_path, alphas=(0.5, 2.0), limit=3)
    assert "0.5, 2.0" in str(err.value) and "-o RUN_DIR" in str(err.value)


def test_torn_last_line_is_truncated_and_the_row_produced_again(tmp_path: Path) -> None:
    reference = tmp_path / "ref"
    fakes.run(reference, limit=4)
    run = tmp_path / "run"
    fakes.run(run, limit=4)
    gens = (run / "generations.jsonl").read_text().splitlines(keepends=True)
    judg = (run / "judgments.jsonl").read_text().splitlines(keepends=True)
    # keep 7 generations plus half of the 8th; 3 judgments plus a torn 4th
    (run / "generations.jsonl").write_text("".join(gens[:7]) + gens[7][:25])
    (run / "judgments.jsonl").write_text("".join(judg[:3]) + judg[3][:-9])
    fakes.run(run, limit=4)
    for name in ("generations.jsonl", "judgments.jsonl"):
        rows = _lines(run / name)
        assert len({(r["cell"], r["id"]) for r in rows}) == len(rows)
        assert rows == _lines(reference / name)


def test_recover_tail_and_read_rows_errors(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"cell": "c", "id": "1"}\n{"cell": "c", "id": "2"')
    assert [r["id"] for r in read_rows(path)] == ["1"]  # a torn line is not a row
    assert recover_tail(path) == len('{"cell": "c", "id": "2"')
    assert path.read_text() == '{"cell": "c", "id": "1"}\n' and recover_tail(path) == 0
    store = RowStore(path)
    with pytest.raises(DataError, match="duplicate"):
        store.append([{"cell": "c", "id": "1"}])
    path.write_text('{"cell": "c", "id": "1"}\nnot json\n{"cell": "c", "id": "3"}\n')
    with pytest.raises(DataError, match=r"rows.jsonl:2"):
        read_rows(path)
    path.write_text('{"cell": "c", "id": "1"}\n{"cell": "c", "id": "1"}\n')
    with pytest.raises(DataError, match="appears twice"):
        read_rows(path)


def test_bootstrap_intervals() -> None:
    all_one = bootstrap([1.0] * 40)
    assert (all_one.value, all_one.low, all_one.high, all_one.n) == (1.0, 1.0, 1.0, 40)
    half = bootstrap([1.0, 0.0] * 50, seed=3)
    assert half.value == 0.5 and half.low is not None and half.high is not None
    assert 0.35 < half.low < 0.5 < half.high < 0.65
    assert bootstrap([1.0, 0.0] * 50, seed=3) == half  # seeded
    wide = bootstrap([1.0, 0.0] * 5, seed=3)
    assert wide.low is not None and half.low is not None and wide.low < half.low
    assert bootstrap([]).value is None and bootstrap([]).format() == "-"


def test_anchor_leaks_are_refused(tmp_path: Path) -> None:
    anchors = fakes.BENCHES["harm:anchor"]
    with pytest.raises(ConfigError, match="never evaluate on anchors"):
        check_anchor_leak("harm:anchor", anchors, "harm:anchor", anchors)
    with pytest.raises(ConfigError, match=r"contains the anchor set.*harm:eval"):
        check_anchor_leak("harm:anchor", anchors, "harm", fakes.BENCHES["harm"])
    with pytest.raises(ConfigError, match="shares 4 item id"):
        fakes.run(tmp_path, benchmarks=("harm-with-anchors",))
    other = [Item(a.id, "another prompt") for a in anchors]
    check_anchor_leak("harm:anchor", anchors, "unrelated", other)  # same ids, other source: fine
    with pytest.raises(ConfigError, match="shares"):
        check_anchor_leak("harm:anchor", anchors, "copy.jsonl", list(anchors))


def test_null_images_are_attached_to_text_items(tmp_path: Path) -> None:
    items = attach_null(
        fakes.BENCHES["text"] + fakes.BENCHES["benign"][:1], NullImage.parse("blank:black")
    )
    assert isinstance(items[0].image, Image.Image) and items[0].image.getpixel((0, 0)) == (0, 0, 0)
    assert items[0].meta["null"] == "blank:black" and items[-1].image is None
    fakes.run(tmp_path, benchmarks=("text",), methods=("none",), anchors=None, limit=2)
    row = _lines(tmp_path / "generations.jsonl")[0]
    assert row["item"]["image"].startswith("<in-memory")


def test_config_validation_and_round_trip() -> None:
    cfg = fakes.config(judges={"benign": "refusal"}, judge_options={"fake": {"x": 1}})
    assert EvalConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    assert cfg.judge_for("benign") == "refusal" and cfg.judge_for("harm:eval") == "fake"
    with pytest.raises(ConfigError, match="exactly one of --shift"):
        fakes.config(anchors=None)
    with pytest.raises(ConfigError, match="estimator one of"):
        fakes.config(estimator="median")
    with pytest.raises(ConfigError, match="unknown method"):
        fakes.config(methods=("none", "steer"))
    with pytest.raises(ConfigError, match="not benchmarks of this run"):
        fakes.config(judges={"vlsafe": "mc"})
    with pytest.raises(ConfigError, match="unknown config key"):
        EvalConfig.from_json({**cfg.to_json(), "colour": "red"})
    assert EvalConfig(benchmarks=("x",), methods=("none",), alphas=()).cells == (
        Cell("x", "none", None),
    )


def test_default_judges() -> None:
    assert default_judge("vlsafe:eval") == "refusal"
    assert default_judge("xstest") == "refusal"
    assert default_judge("scienceqa") == "mc"
    assert default_judge("llava-bench-coco") == "reference"
    assert default_judge("organism:harmful-image") == "organism"
    assert default_judge("data/mine.jsonl") == "refusal"


def test_paper_preset_builds_the_papers_grid() -> None:
    cfg = paper_preset("llava-hf/llava-1.5-7b-hf", limit=5)
    assert cfg.benchmarks == ("vlsafe:eval", "forbidden-questions", "llava-bench-coco", "scienceqa")
    assert cfg.anchors == "vlsafe:anchor" and cfg.limit == 5
    assert cfg.methods == ("none", "dataset", "sample") and cfg.alphas == PAPER_ALPHAS
    assert PAPER_ALPHAS == (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
    assert len(cfg.cells) == 4 * (1 + 2 * 7)
    judges = {b: cfg.judge_for(b) for b in cfg.benchmarks}
    assert judges == {
        "vlsafe:eval": "llm",
        "forbidden-questions": "llm",
        "llava-bench-coco": "reference",
        "scienceqa": "mc",
    }
    assert cfg.bench_options["forbidden-questions"] == {"pair": "null"}
    assert paper_preset("m", judge_model="j").judge_options["llm"] == {"model": "j"}


def test_a_second_writer_is_refused_and_a_finished_run_loads_no_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cmrm.evaluation import run_eval
    from cmrm.evaluation.store import run_lock

    with run_lock(tmp_path), pytest.raises(ConfigError, match="another process"):
        fakes.run(tmp_path)
    fakes.run(tmp_path, limit=2)

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("cmrm.models.load_vlm", no_model)
    summary = run_eval(
        fakes.config(limit=2),
        tmp_path,
        generate_fn=fakes.fake_generate,
        load_items_fn=fakes.fake_load_items,
        get_judge_fn=fakes.fake_get_judge,
        calibrate_fn=fakes.fake_calibrate,
    )
    assert all(c.n == c.expected == 2 for c in summary.cells)
