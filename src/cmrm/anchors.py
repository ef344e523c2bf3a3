"""Resolve an anchor-set spec (a JSONL file, or a benchmark name with an optional split)."""

from __future__ import annotations

from pathlib import Path

from .errors import DataError
from .items import Item, read_jsonl


def load_anchor_items(
    spec: str, *, root: Path | None = None, limit: int | None = None
) -> list[Item]:
    """Items for calibration: ``FILE.jsonl``, ``BENCH`` or ``BENCH:split`` (e.g. ``vlsafe:anchor``).

    Raises:
        DataError: the file or benchmark does not exist, or the set is empty.
    """
    if spec.endswith(".jsonl") or Path(spec).is_file():
        items = list(read_jsonl(spec))
        items = items[:limit] if limit else items
    else:
        from .data import load_items

        items = load_items(spec, root=root, limit=limit)
    if not items:
        raise DataError(f"anchor set {spec!r} is empty; calibration needs at least one item")
    return items
