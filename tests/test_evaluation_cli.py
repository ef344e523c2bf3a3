"""`cmrm eval` and `cmrm report` end to end: a generic JSONL benchmark, the real refusal judge,
the real engine on a tiny saved LLaVA; and the flag parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import cmrm.cli.evaluate  # noqa: F401  (registers eval and report)
from cmrm.base.errors import ConfigError
from cmrm.cli.app import app
from cmrm.evaluation.options import build_config, parse_keyed, parse_options


def _write_bench(folder: Path, name: str, rows: list[dict]) -> Path:
    folder.mkdir(exist_ok=True)
    for i, row in enumerate(rows):
        if row.get("image"):
            Image.new("RGB", (32, 24), ("red", "blue", "green")[i % 3]).save(folder / row["image"])
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def benches(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    evals = _write_bench(
        data,
        "eval.jsonl",
        [
            {"id": "q1", "prompt": "what is this", "image": "q1.png", "kind": "harmful"},
            {"id": "q2", "prompt": "is this red", "image": "q2.png", "kind": "benign"},
            {"id": "q3", "prompt": "what is w5", "image": None, "kind": "harmful"},
        ],
    )
    anchors = _write_bench(
        data,
        "anchors.jsonl",
        [
            {"id": "a1", "prompt": "w1 w2 w3", "image": "a1.png"},
            {"id": "a2", "prompt": "w4 w5", "image": "a2.png"},
        ],
    )
    return evals, anchors


def test_eval_then_report_with_the_real_engine(
    saved_llava: Path, benches: tuple[Path, Path], tmp_path: Path
) -> None:
    evals, anchors = benches
    run = tmp_path / "run"
    args = [
        "eval",
        str(saved_llava),
        "--bench",
        str(evals),
        "--method",
        "none,dataset,sample,text-only",
        "--alpha",
        "0,1",
        "--anchors",
        str(anchors),
        "--judge",
        "refusal",
        "-o",
        str(run),
        "--max-new-tokens",
        "3",
        "--batch-size",
        "2",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "eval.jsonl::dataset@1.0" in result.stdout and "unsafe_rate" in result.stdout
    gens = [json.loads(x) for x in (run / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == 3 * 6 and (run / "shift" / "shift.json").exists()
    by = {(g["cell"], g["id"]): g["completion"] for g in gens}
    key = f"{evals}::"
    # alpha 0 is the identity, bit for bit; text-only drops the image
    for item in ("q1", "q2", "q3"):
        assert by[(key + "dataset@0.0", item)] == by[(key + "none", item)]
        assert by[(key + "sample@0.0", item)] == by[(key + "none", item)]
    assert by[(key + "text-only", "q3")] == by[(key + "none", "q3")]  # no image to drop
    judg = [json.loads(x) for x in (run / "judgments.jsonl").read_text().splitlines()]
    assert {j["judgment"]["judge"] for j in judg} == {"refusal"} and len(judg) == 18
    summary = json.loads((run / "summary.json").read_text())
    none = next(c for c in summary["cells"] if c["cell"] == key + "none")
    assert (
        none["metrics"]["unsafe_rate"]["n"] == 2 and none["metrics"]["over_refusal_rate"]["n"] == 1
    )

    again = CliRunner().invoke(app, args)  # resume of a finished run: same rows
    assert again.exit_code == 0 and (run / "generations.jsonl").read_text().count("\n") == 18
    changed = CliRunner().invoke(app, [*args[:-4], "--max-new-tokens", "4", "--batch-size", "2"])
    assert changed.exit_code == 1 and "max_new_tokens" in changed.output

    report = CliRunner().invoke(app, ["report", str(run)])
    assert report.exit_code == 0, report.output
    assert (run / "report.html").exists() and "Example generations" in (
        run / "report.md"
    ).read_text()


def test_eval_refuses_anchors_as_eval_data(benches: tuple[Path, Path], tmp_path: Path) -> None:
    _, anchors = benches
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "organism",
            "--bench",
            str(anchors),
            "--method",
            "dataset",
            "--anchors",
            str(anchors),
            "-o",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 1 and "never evaluate on anchors" in result.output


def test_flag_parsing() -> None:
    assert parse_keyed(["refusal", "scienceqa=mc", "x.jsonl:eval=llm"], "--judge") == (
        "refusal",
        {"scienceqa": "mc", "x.jsonl:eval": "llm"},
    )
    with pytest.raises(ConfigError, match="given twice"):
        parse_keyed(["a", "b"], "--judge")
    assert parse_options(
        ["llm.model=org/m", "llm.max_new_tokens=64", "d/x.jsonl.pair=null"], "f"
    ) == {"llm": {"model": "org/m", "max_new_tokens": 64}, "d/x.jsonl": {"pair": "null"}}
    with pytest.raises(ConfigError, match="NAME.KEY=VALUE"):
        parse_options(["model=x"], "--judge-option")
    cfg = build_config(
        "m",
        benches=["a,b"],
        methods="none,sample",
        alphas="0.5, 1",
        judges=["b=mc"],
        limit=None,
        batch_size=4,
    )
    assert cfg.benchmarks == ("a", "b") and cfg.alphas == (0.5, 1.0) and cfg.batch_size == 4
    assert cfg.judge_for("a") == "refusal" and cfg.judge_for("b") == "mc"
    with pytest.raises(ConfigError, match="unknown preset"):
        build_config("m", preset="papr")


def test_paper_preset_from_flags() -> None:
    cfg = build_config("llava-hf/llava-1.5-7b-hf", preset="paper", judge_model="org/judge", limit=8)
    assert len(cfg.cells) == 60 and cfg.limit == 8 and cfg.anchors == "vlsafe:anchor"
    assert cfg.judge_options["llm"] == {"model": "org/judge"}
    small = build_config(
        "m",
        preset="paper",
        benches=["vlsafe:eval", "scienceqa"],
        alphas="1",
        judge_options=["llm.max_new_tokens=8"],
    )
    assert small.judges == {"scienceqa": "mc"} and len(small.cells) == 2 * 3
    assert small.judge_options["llm"] == {
        "model": cfg.judge_options["llm"]["model"].replace(
            "org/judge", small.judge_options["llm"]["model"]
        ),
        "max_new_tokens": 8,
    }
    shifted = build_config("m", preset="paper", shift="vec")
    assert shifted.anchors is None and shifted.shift == "vec"


def test_default_sources(benches: tuple[Path, Path]) -> None:
    from cmrm.evaluation.sources import default_get_judge, default_load_items

    evals, _ = benches
    items = default_load_items(str(evals), root="/no/such/root", limit=2)  # root ignored for files
    assert [i.id for i in items] == ["q1", "q2"] and items[0].image == evals.parent / "q1.png"
    assert default_get_judge("organism").name == "organism"
    assert default_get_judge("refusal").name == "refusal"
    with pytest.raises(ConfigError, match="no options"):
        default_get_judge("organism", model="x")
