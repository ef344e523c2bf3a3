"""Crash-safe files of a run directory: append-only JSONL rows, atomic JSON, a run lock.

Why rows survive a SIGKILL at any moment:

- rows are appended, never rewritten; each batch's rows are one ``write`` followed by ``flush``
  and ``fsync``, so everything written before the kill is on disk;
- a kill in the middle of a write leaves at most one torn last line (no trailing newline). It is
  detected and truncated when the file is opened again, and the rows it held are produced again;
- each row is keyed by (cell, item id); a resumed run skips keys already present, so no row is
  produced twice. A repeated key found on disk is corruption and fails loudly;
- ``config.json`` and ``summary.json`` are written to a temporary file and renamed into place;
- an exclusive lock on ``RUN_DIR/.lock`` stops two processes writing the same run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..base.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

RowKey = tuple[str, str]
"""(cell key, item id)."""


def row_key(row: dict[str, Any]) -> RowKey:
    return (str(row["cell"]), str(row["id"]))


def recover_tail(path: Path) -> int:
    """Truncate a torn last line (one without its newline); return the bytes removed."""
    if not path.exists():
        return 0
    with path.open("rb+") as handle:
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    removed = len(data) - keep
    logger.warning(
        "%s: removed a torn last line (%d bytes) left by an interrupted run", path, removed
    )
    return removed


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of a JSONL file, in order (a torn last line is ignored, not truncated).

    Raises:
        DataError: a complete line is not a JSON object, or a (cell, id) key repeats.
    """
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    seen: set[RowKey] = set()
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete = lines[:-1]  # the piece after the last newline is empty or torn
    for lineno, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path}:{lineno} is not valid JSON ({err.msg}); the file was edited or "
                "corrupted. Remove the line (its row will be produced again on resume)."
            ) from err
        if not isinstance(row, dict) or "cell" not in row or "id" not in row:
            raise DataError(
                f"{path}:{lineno}: expected an object with 'cell' and 'id', got {row!r}"
            )
        key = row_key(row)
        if key in seen:
            raise DataError(
                f"{path}:{lineno}: row for cell {key[0]!r}, item {key[1]!r} appears twice; "
                "two runs may have written this directory. Remove the duplicate line."
            )
        seen.add(key)
        rows.append(row)
    return rows


class RowStore:
    """An append-only JSONL file of rows keyed by (cell, item id)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        recover_tail(path)
        self._keys: set[RowKey] = {row_key(r) for r in read_rows(path)}

    def __contains__(self, key: RowKey) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def rows(self) -> list[dict[str, Any]]:
        return read_rows(self.path)

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows in one write, then flush and fsync; keys already stored are an error."""
        keys = [row_key(r) for r in rows]
        clash = [k for k in keys if k in self._keys]
        if clash or len(set(keys)) != len(keys):
            raise DataError(f"{self.path}: refusing to write duplicate row key(s) {clash or keys}")
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        self._keys.update(keys)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DataError(f"{path} does not exist; is this a cmrm eval run directory?") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err.msg} at line {err.lineno})") from err


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir/.lock`` (released by the OS even after SIGKILL)."""
    handle = (run_dir / ".lock").open("a")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise ConfigError(
                f"another process is writing {run_dir} (its .lock is held); wait for it to "
                "finish or pass a different -o RUN_DIR"
            ) from err
        yield
    finally:
        handle.close()
