"""Run by ``tests/test_distributed_calibrate.py`` under ``torchrun --nproc_per_node 2``.

``python tests/distributed_worker.py OUT ANCHORS``: every rank runs ``cmrm calibrate`` (the typer
app, as ``-m cmrm`` would) for ``mean`` and ``pc1``, and ``--sequential`` with the carried
states on disk and in memory, then exercises the collectives, and writes
what it saw to ``OUT/rank-R.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from cmrm.base import distributed
from cmrm.base.errors import ConfigError
from cmrm.cli import app


def main(out: Path, anchors: Path) -> None:
    world = distributed.World.from_env()
    for estimator in ("mean", "pc1"):
        args = ["calibrate", "organism", "--anchors", str(anchors), "--estimator", estimator]
        app([*args, "--batch-size", "2", "-o", str(out / estimator)], standalone_mode=False)
    for budget in ("0", "1024"):  # sequential, carried states on disk / in memory
        args = ["calibrate", "organism", "--anchors", str(anchors), "--sequential"]
        args += ["--carry-budget-mib", budget, "--batch-size", "2"]
        app([*args, "-o", str(out / f"sequential-{budget}")], standalone_mode=False)
    seen: dict[str, object] = {"rank": world.rank, "size": world.size}
    with distributed.process_group(world):
        seen["world_size_env"] = __import__("os").environ.get("WORLD_SIZE")
        rows = torch.full((2, world.rank + 1, 3), float(world.rank))
        index = torch.arange(world.rank + 1) * 10 + world.rank
        gathered, order = distributed.gather_rows(rows, index)
        seen["gathered"] = [list(gathered.shape), order.tolist(), gathered[0, :, 0].tolist()]
        seen["from_main"] = distributed.from_main(world.rank == 0)
        seen["any"] = distributed.any_rank(world.rank == 1)
        seen["sum"] = distributed.all_sum(torch.tensor([world.rank + 1.0])).tolist()

        def fail() -> None:
            raise ConfigError("rank 0 refuses")

        try:
            distributed.main_first(world, fail)
        except ConfigError as err:
            seen["error"] = [type(err).__name__, str(err)]
        distributed.barrier()
    (out / f"rank-{world.rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
    distributed.exit_process(0)
