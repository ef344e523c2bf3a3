"""``cmrm eval`` across 2 CPU processes (gloo): one rank SIGKILLed mid-run, the run lock held
against a second writer, the job resumed under ``accelerate launch``, and the merged run folder
compared with a single-process run of the same command."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cmrm.cli import app

from . import launchers as L


def _args(run: Path, anchors: Path) -> list[str]:
    return [
        "eval",
        "organism",
        "--bench",
        "organism:harmful-image",
        "--bench",
        "organism:benign-text",
        "--method",
        "none,dataset,sample",
        "--alpha",
        "1",
        "--anchors",
        str(anchors),
        "--limit",
        "4",
        "--max-new-tokens",
        "4",
        "--batch-size",
        "1",
        "-o",
        str(run),
    ]


def _without_created(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "created" not in line)


def test_two_ranks_killed_resumed_equal_one_process(tmp_path: Path) -> None:
    anchors = L.write_anchors(tmp_path / "data")
    single, multi = tmp_path / "single", tmp_path / "multi"
    result = CliRunner().invoke(app, _args(single, anchors))
    assert result.exit_code == 0, result.output

    job = L.start(L.torchrun(2, "-m", "cmrm", *_args(multi, anchors)))
    store = multi / "shards" / "rank-1-of-2" / "generations.jsonl"
    # the rank's handle is found before it writes, and it is stopped at its first row, so the
    # kill lands mid-shard however loaded the machine is
    rank1 = L.find_rank(job, 1)
    L.wait_for_rows(job, store, 1)
    rank1.suspend()
    # while the job runs, rank 0 holds the run lock: a second writer is refused
    blocked = CliRunner().invoke(app, _args(multi, anchors))
    assert blocked.exit_code == 1 and "another process is writing" in blocked.output
    held = L.lines(store)
    rank1.kill()
    job.communicate(timeout=120)
    assert job.returncode != 0, "torchrun should fail when a rank is killed"
    per_rank = 2 * 6  # 2 of the 4 items of each benchmark, 3 cells each, 2 benchmarks
    assert 1 <= held < per_rank, f"the kill came too late ({held} rows)"
    assert not (multi / "generations.jsonl").exists()  # nothing merged yet

    code, out, err = L.finish(L.start(L.accelerate(2, "-m", "cmrm", *_args(multi, anchors))))
    assert code == 0, err[-4000:]
    assert out.count("organism:harmful-image::none") == 1  # the table, printed by rank 0 only
    assert not (multi / "shards").exists()
    for name in (
        "generations.jsonl",
        "judgments.jsonl",
        "summary.json",
        "shift/shift.safetensors",
        "shift/shift.json",
    ):
        assert (multi / name).read_bytes() == (single / name).read_bytes(), name
    gens = (single / "generations.jsonl").read_text().splitlines()
    assert len(gens) == 2 * 4 * 3 and len({json.loads(g)["completion"] for g in gens}) > 1
    a, b = (json.loads((d / "config.json").read_text()) for d in (single, multi))
    assert a["config"] == b["config"]
    for run in (single, multi):
        assert CliRunner().invoke(app, ["report", str(run)]).exit_code == 0
    assert _without_created((multi / "report.md").read_text()) == _without_created(
        (single / "report.md").read_text()
    )
