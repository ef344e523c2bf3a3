"""The one record every data source produces, and the generic local JSONL format.

An :class:`Item` is a prompt with an optional image. Benchmarks, anchor sets and the organism's
suites all yield Items, so calibration, generation, evaluation and gap analysis take the same input.

Generic JSONL format (one object per line)::

    {"id": "q1", "prompt": "...", "image": "imgs/a.png"}          # image relative to the file
    {"id": "q2", "prompt": "...", "image": null, "kind": "harmful", "category": "weapons"}

Optional keys: ``kind`` ("harmful" | "benign"), ``category``, ``reference`` (a reference answer),
``choices`` (list of strings), ``answer`` (index into choices or a string), ``caption``, ``meta``
(an object of anything else the benchmark records; judges and null pairing read it).

:func:`write_jsonl` writes any items in this format with their images as files beside it (what
``cmrm bench export`` does), so that every benchmark — the organism's in-memory suites included —
can be read back by :func:`read_jsonl` and every command.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from ..base.errors import DataError
from .images import ImageRef, export_image

Kind = Literal["harmful", "benign"]

_KINDS = ("harmful", "benign")
_OPTIONAL = ("kind", "category", "reference", "choices", "answer", "caption")


@dataclass(frozen=True)
class Item:
    """One prompt, its optional image and whatever reference data its benchmark has."""

    id: str
    prompt: str
    image: ImageRef = None
    kind: Kind | None = None
    category: str | None = None
    reference: str | None = None
    choices: tuple[str, ...] | None = None
    answer: int | str | None = None
    caption: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise DataError(f"item id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.prompt, str):
            raise DataError(f"item {self.id!r}: prompt must be a string, got {type(self.prompt)}")
        if self.kind is not None and self.kind not in _KINDS:
            raise DataError(f"item {self.id!r}: kind must be one of {_KINDS}, got {self.kind!r}")

    @property
    def has_image(self) -> bool:
        return self.image is not None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict: image paths as strings, in-memory images as ``"<in-memory WxH>"``."""
        image: str | None
        if isinstance(self.image, Image.Image):
            image = f"<in-memory {self.image.width}x{self.image.height}>"
        else:
            image = None if self.image is None else str(self.image)
        out: dict[str, Any] = {"id": self.id, "prompt": self.prompt, "image": image}
        for key in _OPTIONAL:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        if self.meta:
            out["meta"] = dict(self.meta)
        return out


def _item_from_record(record: Any, base: Path, where: str) -> Item:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in ("id", "prompt", "image") if k not in record]
    if missing:
        raise DataError(
            f"{where}: missing key(s) {missing}; every line needs 'id', 'prompt' and 'image' "
            "(a path relative to the file's folder, or null for a text-only row: write "
            '"image": null to say so, an absent key is taken for a mistake)'
        )
    raw_id = record["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise DataError(f"{where}: 'id' must be a string or an integer, got {raw_id!r:.60}")
    image = record.get("image")
    if image is not None and not isinstance(image, str):
        raise DataError(f"{where}: 'image' must be a path string or null, got {image!r}")
    if isinstance(image, str) and image.startswith("<in-memory"):
        raise DataError(
            f"{where}: 'image' is {image!r}, the placeholder `cmrm bench show` prints for an "
            "image held in memory; write the benchmark with its image files using "
            "`cmrm bench export NAME -o DIR` and pass DIR/NAME.jsonl"
        )
    meta = record.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise DataError(f"{where}: 'meta' must be a JSON object or absent, got {meta!r:.60}")
    choices = record.get("choices")
    if choices is not None and not (
        isinstance(choices, list) and all(isinstance(c, str) for c in choices)
    ):
        raise DataError(f"{where}: 'choices' must be a list of strings, got {choices!r}")
    try:
        return Item(
            id=str(raw_id),
            prompt=record["prompt"],
            image=(base / image) if image else None,
            kind=record.get("kind"),
            category=record.get("category"),
            reference=record.get("reference"),
            choices=tuple(choices) if choices is not None else None,
            answer=record.get("answer"),
            caption=record.get("caption"),
            meta=meta or {},
        )
    except DataError as err:
        raise DataError(f"{where}: {err}") from err


def read_jsonl(path: str | Path) -> Iterator[Item]:
    """Read the generic JSONL format, resolving image paths against the file's folder.

    Raises:
        DataError: the file is missing, a line is not JSON, a required key is missing, or an id
            repeats. The message names the line number.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; pass a JSONL file of items")
    seen: set[str] = set()
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            where = f"{path}:{lineno}"
            line = _decode(raw, lineno, path)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{where}: not valid JSON ({err.msg} at column {err.colno})"
                ) from err
            item = _item_from_record(record, path.parent, where)
            if item.id in seen:
                raise DataError(f"{where}: duplicate id {item.id!r}; ids must be unique")
            seen.add(item.id)
            yield item


_BINARY = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"RIFF": "a WebP image",
    b"PK\x03\x04": "a zip archive",
    b"%PDF": "a PDF",
}


def _decode(raw: bytes, lineno: int, path: Path) -> str:
    """One line of a generic JSONL file as text (UTF-8, a byte-order mark allowed on line 1)."""
    if lineno == 1:
        for magic, what in _BINARY.items():
            if raw.startswith(magic):
                raise DataError(
                    f"{path} is {what}, not a JSONL data file; a data file lists items, one "
                    'JSON object per line ({"id": ..., "prompt": ..., "image": "a.png"}), and '
                    "refers to its images by path"
                )
    try:
        return raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as err:
        byte = raw[err.start : err.start + 1].hex()
        raise DataError(
            f"{path}:{lineno} is not UTF-8 text (byte 0x{byte} at column {err.start + 1}); "
            "a JSONL data file must be UTF-8: re-save it as UTF-8 (e.g. iconv -f latin1 -t "
            f"utf-8 {path.name} > fixed.jsonl)"
        ) from err


def write_jsonl(items: Iterable[Item], path: str | Path, *, images: str = "images") -> Path:
    """Write ``items`` to ``path`` in the generic format, their images into ``images/`` beside it.

    Image files are copied byte for byte and in-memory images saved as PNG, each named by the
    hash of its bytes (an image shared by several items is written once) with the extension of
    its decoded format (a WebP named ``.png`` becomes ``.webp``). Image paths in the file are
    relative to its folder. The JSONL file is written last and atomically; :func:`read_jsonl`
    reads it back to equal items (images as paths).

    Raises:
        DataError: an image is missing or undecodable, or ``meta`` is not JSON-serialisable.
    """
    from ..base.atomic import atomic_write

    path = Path(path)
    folder = path.parent / images
    lines = []
    for item in items:
        record = item.to_json()
        if item.image is not None:
            try:
                saved = export_image(item.image, folder)
            except DataError as err:
                raise DataError(f"item {item.id!r}: {err}") from err
            record["image"] = saved.relative_to(path.parent).as_posix()
        try:
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        except (TypeError, ValueError) as err:
            raise DataError(
                f"item {item.id!r} cannot be written as JSON ({err}); its meta must hold only "
                "JSON values (strings, numbers, booleans, null, lists, objects)"
            ) from err
    return atomic_write(path, "".join(lines))
