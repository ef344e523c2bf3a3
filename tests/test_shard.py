"""The run files of a sharded run: which rows a rank owns, folding rank stores back into the run
files (also after a multi-process run died and one process resumes), and the merge's checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cmrm.base.distributed import World
from cmrm.base.errors import DataError
from cmrm.data.items import Item
from cmrm.evaluation.shard import Shard, canonical_order, merge_run_files

from . import test_evaluation_fakes as fakes


def _split_into_rank_stores(reference: Path, run: Path, keep: int) -> None:
    """Rows of a finished run spread over two rank stores (by item position), a few left out,
    one rank's store ending in a torn line, as a killed 2-rank job leaves them."""
    positions = {
        b: {it.id: i for i, it in enumerate(fakes.BENCHES[b])} for b in ("harm:eval", "benign")
    }
    (run / "shards").mkdir(parents=True)
    (run / "config.json").write_bytes((reference / "config.json").read_bytes())
    for kind in ("generations", "judgments"):
        rows = (reference / f"{kind}.jsonl").read_text().splitlines(keepends=True)
        rows = rows[:keep] if kind == "generations" else rows[: keep // 2]
        for rank in (0, 1):
            folder = run / "shards" / f"rank-{rank}-of-2"
            folder.mkdir(exist_ok=True)
            mine = [
                r
                for r in rows
                if positions[json.loads(r)["benchmark"]][json.loads(r)["id"]] % 2 == rank
            ]
            torn = '{"cell": "harm:eval::none", "id": "h0' if rank == 1 else ""
            (folder / f"{kind}.jsonl").write_text("".join(mine) + torn)


def test_one_process_folds_the_stores_of_a_dead_multi_process_run(tmp_path: Path) -> None:
    reference, run = tmp_path / "reference", tmp_path / "run"
    fakes.run(reference)
    _split_into_rank_stores(reference, run, keep=23)
    fakes.run(run)
    assert not (run / "shards").exists()
    for name in ("generations.jsonl", "judgments.jsonl", "summary.json"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name


def _items(load_items: Any, names: tuple[str, ...]) -> dict[str, list[Item]]:
    return {n: load_items(n) for n in names}


def test_ranks_own_items_strided_and_every_row_once(tmp_path: Path) -> None:
    config = fakes.config()
    items = _items(fakes.fake_load_items, config.benchmarks)
    owned = []
    for rank in (0, 1, 2):
        shard = Shard(tmp_path, World(rank=rank, size=3))
        shard.plan(config.cells, items)
        assert [i.id for i in shard.select(items["benign"])] == [
            f"b{j:02d}" for j in range(rank, 6, 3)
        ]
        owned.append(shard.mine)
    assert set.union(*owned) == set(canonical_order(config.cells, items))
    assert sum(len(o) for o in owned) == len(canonical_order(config.cells, items))


def test_merge_keeps_a_repeated_row_once_and_refuses_conflicts(tmp_path: Path) -> None:
    config = fakes.config(benchmarks=("benign",), methods=("none",))
    order = canonical_order(config.cells, _items(fakes.fake_load_items, ("benign",)))
    row = {"cell": "benign::none", "id": "b01", "completion": "x"}
    line = json.dumps(row) + "\n"
    store = tmp_path / "shards" / "rank-0-of-2" / "generations.jsonl"
    store.parent.mkdir(parents=True)
    first = json.dumps({**row, "id": "b00"}) + "\n"
    (tmp_path / "generations.jsonl").write_text(line)  # a crash after the rename, before cleanup
    store.write_text(line + first)
    assert merge_run_files(tmp_path, order)["generations"] == 2
    assert (tmp_path / "generations.jsonl").read_text() == first + line  # canonical order
    assert not (tmp_path / "shards").exists()

    store.parent.mkdir(parents=True)
    store.write_text(json.dumps({**row, "completion": "y"}) + "\n")
    with pytest.raises(DataError, match="different content"):
        merge_run_files(tmp_path, order)
    store.write_text(json.dumps({**row, "id": "zz"}) + "\n")
    with pytest.raises(DataError, match="no longer has"):
        merge_run_files(tmp_path, order)
    store.write_text("not json\n")
    with pytest.raises(DataError, match="rank-0-of-2/generations.jsonl:1 is not a run row"):
        merge_run_files(tmp_path, order)


def test_one_process_writes_rows_in_grid_order_whatever_the_batch_order(tmp_path: Path) -> None:
    lengths = [5, 1, 4, 2, 3, 1]
    bench = [Item(f"x{i}", " ".join(["w"] * n), kind="harmful") for i, n in enumerate(lengths)]
    calls: list[list[str]] = []

    def load(spec: str, **_: Any) -> list[Item]:
        return bench

    def generate(vlm: Any, items: Any, steering: Any, options: Any, **kw: Any) -> list[str]:
        calls.append([i.id for i in items])
        return fakes.fake_generate(vlm, items, steering, options, **kw)

    from cmrm.evaluation import run_eval

    config = fakes.config(benchmarks=("mine",), methods=("none",), anchors=None, batch_size=2)
    run_eval(
        config,
        tmp_path,
        vlm=object(),
        generate_fn=generate,
        load_items_fn=load,
        get_judge_fn=fakes.fake_get_judge,
    )
    assert calls == [["x1", "x5"], ["x3", "x4"], ["x2", "x0"]]  # shortest prompts first
    for kind in ("generations", "judgments"):
        ids = [json.loads(x)["id"] for x in (tmp_path / f"{kind}.jsonl").read_text().splitlines()]
        assert ids == [f"x{i}" for i in range(6)], kind
