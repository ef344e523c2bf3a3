"""Readers for the raw upstream file formats, tolerant of every row shape the formats allow.

CSV with CRLF or LF line ends, with or without a final newline, quoted fields holding commas,
doubled quotes or line breaks, short rows, extra columns and padded header names; JSON
pretty-printed or on one line, with ``\\uXXXX`` escapes and duplicated keys (every entry is kept,
see :func:`entries`); JSON Lines whose strings hold U+2028 or other Unicode line separators;
plain text with one record per line. A UTF-8 BOM is ignored everywhere. Every error names the
file. :func:`finish` is the last step of every loader: rows without a prompt are dropped and
repeated ids made unique, each with a warning that names them.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cmrm.base.errors import DataError
from cmrm.data.items import Item

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


def need(path: Path, layout: str) -> Path:
    """Return ``path`` if it exists, else a DataError saying which layout ``root`` should have."""
    if not path.exists():
        raise DataError(
            f"{path} does not exist; root must hold the upstream layout ({layout}). "
            "Pass --root DIR (root=DIR) pointing at that folder, or omit it to download."
        )
    return path


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err}); expected the upstream file") from err
    except OSError as err:
        raise DataError(f"cannot read {path} ({err})") from err


class JsonObject(dict[str, Any]):
    """A JSON object that also remembers every ``(key, value)`` pair in file order, so that an
    entry whose key repeats (valid JSON; a plain dict keeps only the last) is not lost."""

    pairs: list[tuple[str, Any]]


def _object(pairs: list[tuple[str, Any]]) -> JsonObject:
    obj = JsonObject(pairs)
    obj.pairs = pairs
    return obj


def read_json(path: Path) -> Any:
    """Parse a JSON file; objects come back as :class:`JsonObject` (a dict)."""
    try:
        return json.loads(read_text(path), object_pairs_hook=_object)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err


def entries(data: Any, path: Path, what: str) -> list[tuple[str, Any]]:
    """The ``(key, value)`` entries of a JSON object keyed by id, in file order, repeated keys
    included (:func:`finish` then makes the ids unique)."""
    obj = mapping(data, path, what)
    pairs = obj.pairs if isinstance(obj, JsonObject) else list(obj.items())
    return [(str(key), value) for key, value in pairs]


def lines(text: str) -> list[str]:
    """Split on line ends only (LF, CRLF, CR): never on U+2028, U+0085 or form feeds, which
    ``str.splitlines`` also treats as line ends and which JSON strings may hold raw."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every non-blank line of a JSON Lines file, each of which must be an object."""
    records = []
    for lineno, line in enumerate(lines(read_text(path)), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {record!r:.60}")
        records.append(record)
    return records


def read_lines(path: Path) -> list[str]:
    """The non-blank lines of a text file, stripped (LF or CRLF, final newline or not)."""
    return [line.strip() for line in lines(read_text(path)) if line.strip()]


def read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """CSV rows as dicts of strings; raise when a required column is missing from the header.

    Header names are stripped; a short row's missing fields are ``""``; fields beyond the header
    are dropped; quoted fields may hold commas, doubled quotes and line breaks.
    """
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        rows = list(reader)
    except csv.Error as err:
        raise DataError(f"{path}: malformed CSV ({err})") from err
    header = [name.strip() for name in rows[0]] if rows else []
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; got header {header}, expected {list(required)}"
        )
    out = []
    for row in rows[1:]:
        if not any(field.strip() for field in row):
            continue  # a blank line
        padded = row + [""] * (len(header) - len(row))
        out.append(dict(zip(header, padded, strict=False)))
    return out


def mapping(data: Any, path: Path, what: str) -> dict[str, Any]:
    """``data`` as a dict, or a DataError saying the file is not the expected JSON object."""
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of {what}, got {type(data).__name__}")
    return data


def field(record: dict[str, Any], key: str, where: str) -> Any:
    """``record[key]`` or a DataError naming the record and the keys it does have."""
    if key not in record:
        raise DataError(f"{where}: missing key {key!r}; got keys {sorted(record)}")
    return record[key]


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist; pass an existing folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def text(value: Any) -> str:
    """A field as text: None (a missing or null field) is ``""``; numbers become their digits."""
    return "" if value is None else str(value)


def finish(items: Sequence[Item], source: str) -> list[Item]:
    """The last step of every loader: drop items whose prompt is empty or blank, and make
    repeated ids unique (an exact repeat of an earlier item is dropped; a different item under
    a used id becomes ``"{id}#2"``, ``"{id}#3"`` ...). Each change is logged with the ids."""
    kept = [item for item in items if item.prompt.strip()]
    if len(kept) != len(items):
        empty = [item.id for item in items if not item.prompt.strip()]
        log.warning(
            "%s: skipped %d row(s) with an empty prompt: %s", source, len(empty), empty[:10]
        )
    seen: dict[str, Item] = {}
    out: list[Item] = []
    repeats, renamed = [], []
    for item in kept:
        if item.id not in seen:
            seen[item.id] = item
            out.append(item)
            continue
        if item == seen[item.id]:
            repeats.append(item.id)
            continue
        n = 2
        while f"{item.id}#{n}" in seen:
            n += 1
        new = dataclasses.replace(item, id=f"{item.id}#{n}")
        seen[new.id] = new
        out.append(new)
        renamed.append(new.id)
    if repeats:
        log.warning(
            "%s: dropped %d exact repeat(s) of id(s) %s", source, len(repeats), repeats[:10]
        )
    if renamed:
        log.warning(
            "%s: %d row(s) reuse an earlier id with other content; renamed to %s",
            source,
            len(renamed),
            renamed[:10],
        )
    return out
