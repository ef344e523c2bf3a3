"""A run directory written by several ranks: who does which rows, where each rank's rows go, and
the one merge into the ordinary run files.

- **Which rows.** Item ``i`` of a benchmark (its position after ``--limit``) belongs to rank
  ``i % WORLD_SIZE``, for every cell of the grid: the same shard for the same rank on every
  resume. Judging follows the same split.
- **Where.** A rank appends only to its own crash-safe stores,
  ``RUN_DIR/shards/rank-R-of-N/{generations,judgments}.jsonl`` (the :class:`RowStore` rules:
  one fsynced write per batch, a torn last line cut on reopening). What is done is read from the
  run files *and every store present*, so a resume with another number of ranks, or with one
  process, skips rows any earlier rank finished.
- **Merge.** After a barrier, rank 0 combines the run files and every store, orders the rows as a
  single-process run orders them (cells in grid order, items in benchmark order), writes each run
  file atomically, and removes ``shards/``. A row found twice with the same content (a crash
  between the rename and the removal) counts once; with different content it is an error.
  One process ends its run with the same merge, which only reorders its own rows (length-sorted
  batches append out of order), so both give byte-identical ``generations.jsonl`` and
  ``judgments.jsonl``.
- **Lock.** Rank 0 holds ``RUN_DIR/.lock`` for the whole job; if it cannot, every rank stops with
  the same error before any row is written.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..base import distributed
from ..base.distributed import SINGLE, World
from ..base.errors import DataError
from ..calibration.shift import ShiftVectors
from .preflight import claim_run_dir
from .store import RowKey, RowStore, row_key

logger = logging.getLogger(__name__)

T = TypeVar("T")

KINDS = ("generations", "judgments")
SHARDS = "shards"


def rank_dir(run_dir: Path, world: World) -> Path:
    return run_dir / SHARDS / f"rank-{world.rank}-of-{world.size}"


def store_paths(run_dir: Path, kind: str) -> list[Path]:
    """Every rank store of ``kind`` under ``run_dir/shards`` (any world size), sorted."""
    return sorted((run_dir / SHARDS).glob(f"rank-*-of-*/{kind}.jsonl"))


def read_lines(path: Path) -> Iterator[tuple[RowKey, bytes]]:
    """(key, raw line with its newline) of every complete line; a torn last line is skipped.

    Raises:
        DataError: a line is not a JSON object with ``cell`` and ``id`` (the message names it).
    """
    if not path.exists():
        return
    data = path.read_bytes()
    for lineno, line in enumerate(data.split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = row_key(row)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(
                f"{path}:{lineno} is not a run row ({err}); the file was edited or corrupted. "
                "Remove the line (its row will be produced again on resume)."
            ) from err
        yield key, line + b"\n"


def canonical_order(cells: Sequence[Any], items: Mapping[str, Sequence[Any]]) -> dict[RowKey, int]:
    """Position of every (cell, item id) in a single-process run: cells in grid order, then
    items in benchmark order."""
    order: dict[RowKey, int] = {}
    for cell in cells:
        for item in items[cell.benchmark]:
            order[(cell.key, item.id)] = len(order)
    return order


def merge_run_files(run_dir: Path, order: dict[RowKey, int]) -> dict[str, int]:
    """Combine ``RUN_DIR/{kind}.jsonl`` with every rank store into canonically ordered run files
    (written atomically, only when they change) and remove ``shards/``; returns rows per kind.

    Raises:
        DataError: a key stored twice with different content, or a row this run does not have.
    """
    from ..base.atomic import atomic_write

    counts: dict[str, int] = {}
    for kind in KINDS:
        main = run_dir / f"{kind}.jsonl"
        found: dict[RowKey, bytes] = {}
        listed: list[RowKey] = []
        for source in [main, *store_paths(run_dir, kind)]:
            for key, line in read_lines(source):
                if source == main:
                    listed.append(key)
                if key in found:
                    if found[key] != line:
                        raise DataError(
                            f"{source}: the row for cell {key[0]!r}, item {key[1]!r} is also "
                            "stored elsewhere in this run with different content; two jobs may "
                            "have written this directory. Keep one of the rows and rerun."
                        )
                    continue
                found[key] = line
        unknown = [k for k in found if k not in order]
        if unknown:
            raise DataError(
                f"{run_dir}: {kind} has {len(unknown)} row(s) this run no longer has, e.g. cell "
                f"{unknown[0][0]!r}, item {unknown[0][1]!r} (the data changed since the run "
                "began); start a new run"
            )
        keys = sorted(found, key=order.__getitem__)
        torn = main.exists() and not main.read_bytes().endswith(b"\n") and main.stat().st_size
        if keys != listed or torn:
            atomic_write(main, b"".join(found[k] for k in keys))
        counts[kind] = len(keys)
    shutil.rmtree(run_dir / SHARDS, ignore_errors=True)
    return counts


class Shard:
    """This process's part of a run directory (all of it in a world of one)."""

    def __init__(self, run_dir: Path, world: World = SINGLE) -> None:
        self.run_dir = run_dir
        self.world = world
        self.order: dict[RowKey, int] = {}
        self.mine: set[RowKey] = set()

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    @contextmanager
    def session(self) -> Iterator[Shard]:
        """The process group (several ranks) and the run folder claimed by rank 0 for the run:
        its lock, and the clean-up of a failed start (:func:`~.preflight.claim_run_dir`)."""
        with distributed.process_group(self.world), ExitStack() as stack:
            distributed.main_first(
                self.world, lambda: stack.enter_context(claim_run_dir(self.run_dir))
            )
            yield self

    def main_first(self, action: Any) -> Any:
        """Run ``action`` on rank 0 first (errors reach every rank); see
        :func:`cmrm.base.distributed.main_first`."""
        return distributed.main_first(self.world, action)

    def plan(self, cells: Sequence[Any], items: Mapping[str, Sequence[Any]]) -> None:
        """Learn the grid: the canonical row order and this rank's rows. In a world of one,
        first fold in the stores an interrupted multi-rank run left behind."""
        self.order = canonical_order(cells, items)
        positions = {b: {it.id: i for i, it in enumerate(its)} for b, its in items.items()}
        self.mine = {
            (cell.key, item.id)
            for cell in cells
            for item in items[cell.benchmark]
            if self.world.owns(positions[cell.benchmark][item.id])
        }
        if not self.world.sharded and (self.run_dir / SHARDS).exists():
            logger.info("folding the rank stores of an earlier multi-process run into the run")
            merge_run_files(self.run_dir, self.order)

    def select(self, items: Sequence[T]) -> list[T]:
        """This rank's items (every ``WORLD_SIZE``-th, from its rank)."""
        return [item for i, item in enumerate(items) if self.world.owns(i)]

    def store(self, kind: str) -> RowStore:
        """Where this process appends rows of ``kind``."""
        if not self.world.sharded:
            return RowStore(self.run_dir / f"{kind}.jsonl")
        folder = rank_dir(self.run_dir, self.world)
        folder.mkdir(parents=True, exist_ok=True)
        return RowStore(folder / f"{kind}.jsonl")

    def _sources(self, kind: str) -> list[Path]:
        return [self.run_dir / f"{kind}.jsonl", *store_paths(self.run_dir, kind)]

    def done(self, kind: str) -> set[RowKey]:
        """Keys of ``kind`` finished by any process of this run or an earlier one."""
        return {key for path in self._sources(kind) for key, _ in read_lines(path)}

    def rows(self, kind: str) -> list[dict[str, Any]]:
        """This rank's rows of ``kind`` from every source, each once, in canonical order."""
        found: dict[RowKey, dict[str, Any]] = {}
        for path in self._sources(kind):
            for key, line in read_lines(path):
                if key not in found and (not self.world.sharded or key in self.mine):
                    found[key] = json.loads(line)
        return sorted(found.values(), key=lambda r: self.order.get(row_key(r), len(self.order)))

    def agree(self, value: bool) -> bool:
        """Rank 0's ``value`` on every rank."""
        return distributed.from_main(value) if self.world.sharded else value

    def calibrate_kwargs(self) -> dict[str, Any]:
        """Extra arguments that make a calibration collective (none in a world of one)."""
        return {"world": self.world} if self.world.sharded else {}

    def keep_shift(self, shift: ShiftVectors, directory: Path) -> ShiftVectors:
        """Save ``shift`` (rank 0) and give every rank the saved copy."""
        if not self.world.sharded:
            shift.save(directory)
            return shift
        self.main_first(lambda: shift.save(directory))
        return ShiftVectors.load(directory)

    def merge(self) -> None:
        """Wait for every rank, then write the ordinary run files (rank 0); see the module doc.

        Raises:
            DataError: a rank's rows are not visible to rank 0 (``RUN_DIR`` is not shared by
                every node), or :func:`merge_run_files` failed.
        """
        distributed.barrier()
        self.main_first(self._merge_and_check)

    def _merge_and_check(self) -> None:
        counts = merge_run_files(self.run_dir, self.order)
        if not self.world.sharded:
            return
        for kind in KINDS:
            if counts[kind] != len(self.order):
                have = {key for key, _ in read_lines(self.run_dir / f"{kind}.jsonl")}
                missing = [k for k in self.order if k not in have]
                raise DataError(
                    f"after every rank finished, {self.run_dir / kind}.jsonl lacks "
                    f"{len(missing)} of {len(self.order)} rows (e.g. cell {missing[0][0]!r}, "
                    f"item {missing[0][1]!r}): rank 0 cannot see the other ranks' stores. Put "
                    "RUN_DIR on a filesystem every node shares, then run the same command again."
                )
        logger.info("merged %d rank stores' rows into %s", self.world.size, self.run_dir)
