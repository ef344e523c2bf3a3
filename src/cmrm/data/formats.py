"""Readers for the raw upstream file formats, tolerant of their traps.

CSV with CRLF or LF line ends and with or without a final newline; JSON pretty-printed or on one
line, with ``\\uXXXX`` escapes; JSON Lines; plain text with one record per line. A UTF-8 BOM is
ignored everywhere. Every error names the file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cmrm.errors import DataError

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


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every non-blank line of a JSON Lines file, each of which must be an object."""
    records = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
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
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """CSV rows as dicts; raise when a required column is missing from the header."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    header = list(reader.fieldnames or [])
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; got header {header}, expected {list(required)}"
        )
    try:
        return list(reader)
    except csv.Error as err:
        raise DataError(f"{path}: malformed CSV ({err})") from err


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
