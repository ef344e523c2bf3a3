"""``cmrm calibrate`` across 2 CPU processes (gloo) equals the single-process shift, for ``mean``
(sums all-reduced), ``pc1`` (differences gathered) and sequential (carried states on disk or
in memory, each layer's partial reduced); and the collectives it rests on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cmrm.base.distributed import SINGLE, World
from cmrm.base.errors import ConfigError
from cmrm.calibration.estimate import calibrate
from cmrm.calibration.reduction import Partial, combine, reduce_partial, shard_batches
from cmrm.calibration.shift import ShiftVectors
from cmrm.data.images import NullImage
from cmrm.data.items import read_jsonl
from cmrm.models import load_vlm

from . import launchers as L


def test_calibrate_on_two_ranks_equals_one_process(tmp_path: Path) -> None:
    anchors = L.write_anchors(tmp_path / "data", n=5)  # batches of 2: ranks get 3 and 2 anchors
    out = tmp_path / "out"
    out.mkdir()
    worker = str(Path(__file__).with_name("distributed_worker.py"))
    code, _, err = L.finish(L.start(L.torchrun(2, worker, str(out), str(anchors))))
    assert code == 0, err[-4000:]

    vlm = load_vlm("organism")
    items = list(read_jsonl(anchors))
    for estimator in ("mean", "pc1"):
        single = calibrate(vlm, items, null=NullImage(), estimator=estimator, batch_size=2)  # type: ignore[arg-type]
        multi = ShiftVectors.load(out / estimator)
        assert multi.layers == single.layers and multi.meta.anchor_count == 5
        assert multi.meta.anchor_hash == single.meta.anchor_hash
        torch.testing.assert_close(multi.vectors, single.vectors, rtol=1e-5, atol=1e-6)
    single = calibrate(vlm, items, null=NullImage(), sequential=True, batch_size=2)
    on_disk = ShiftVectors.load(out / "sequential-0")
    in_memory = ShiftVectors.load(out / "sequential-1024")
    assert torch.equal(on_disk.vectors, in_memory.vectors)
    torch.testing.assert_close(on_disk.vectors, single.vectors, rtol=1e-5, atol=1e-6)

    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in (0, 1)]
    for seen in ranks:
        assert seen["size"] == 2 and seen["world_size_env"] is None  # hidden from transformers
        assert seen["gathered"] == [[2, 3, 3], [0, 1, 11], [0.0, 1.0, 1.0]]
        assert seen["from_main"] is True and seen["any"] is True and seen["sum"] == [3.0]
        assert seen["error"] == ["ConfigError", "rank 0 refuses"]  # raised on every rank


def test_partials_combine_like_one_pass() -> None:
    torch.manual_seed(0)
    diffs = torch.randn(3, 7, 5)  # [layers, anchors, hidden]
    whole = Partial.empty(3, 5, keep=True)
    for start in shard_batches(7, 2):
        whole = whole.add(start, diffs[:, start : start + 2])
    parts = []
    for rank in (0, 1, 2):
        part = Partial.empty(3, 5, keep=True)
        for start in shard_batches(7, 2, World(rank=rank, size=3)):
            part = part.add(start, diffs[:, start : start + 2])
        parts.append(part)
    assert [shard_batches(7, 2, World(rank=r, size=3)) for r in (0, 1, 2)] == [[0, 6], [2], [4]]
    joined = combine(parts)
    assert joined.count == 7 and torch.equal(joined.ordered_rows(), diffs)
    torch.testing.assert_close(joined.mean(), diffs.mean(dim=1), rtol=0, atol=1e-6)
    torch.testing.assert_close(joined.total, whole.total, rtol=1e-12, atol=1e-12)
    assert reduce_partial(whole, SINGLE) is whole
    lean = combine([Partial.empty(3, 5).add(0, diffs)])
    assert lean.pieces is None
    with pytest.raises(ValueError, match="kept no rows"):
        lean.ordered_rows()


def test_world_from_env() -> None:
    assert World.from_env({}) == SINGLE
    world = World.from_env(
        {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    )
    assert (world.rank, world.size, world.local_rank, world.local_size) == (3, 4, 1, 2)
    assert world.sharded and not world.is_main and world.owns(7) and not world.owns(6)
    with pytest.raises(ConfigError, match="SLURM started 2 tasks"):
        World.from_env({"SLURM_NTASKS": "2"})
    with pytest.raises(ConfigError, match="0 <= RANK < WORLD_SIZE"):
        World.from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="must be an integer"):
        World.from_env({"WORLD_SIZE": "two"})
