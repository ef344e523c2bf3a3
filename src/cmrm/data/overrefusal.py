"""Over-refusal benchmarks: XSTest (text) and MOSSBench (benign requests with unsettling images)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cmrm.base.errors import DataError
from cmrm.data.items import Item, Kind

from .benchmark import Benchmark, Option
from .fetch import Remote, RemoteFile
from .formats import entries, field, finish, need, read_csv, read_json, text
from .pairing import PAIR_OPTION, pair_items

GITHUB = "https://raw.githubusercontent.com"

# ---------------------------------------------------------------- XSTest
XSTEST_CSV = "xstest_prompts.csv"
XSTEST_V2_CSV = "xstest_v2_prompts.csv"
XSTEST_LAYOUT = f"{XSTEST_CSV} (or the older {XSTEST_V2_CSV})"
_LABEL_KIND: dict[str, Kind] = {"safe": "benign", "unsafe": "harmful"}


def read_xstest(root: Path | None, opts: Mapping[str, Any], _limit: int | None) -> list[Item]:
    assert root is not None
    if (root / XSTEST_CSV).is_file():
        items = _xstest_current(root / XSTEST_CSV)
    else:
        items = _xstest_v2(need(root / XSTEST_V2_CSV, XSTEST_LAYOUT))
    return pair_items(finish(items, "xstest"), opts["pair"])


def _xstest_current(path: Path) -> list[Item]:
    items = []
    for row in read_csv(path, ("id", "prompt", "type", "label", "focus", "note")):
        label = row["label"].strip().lower()
        if label not in _LABEL_KIND:
            raise DataError(
                f"{path} id {row['id']}: label must be safe or unsafe, got {row['label']!r}"
            )
        items.append(_xstest_item(row["id"].strip(), row, _LABEL_KIND[label]))
    return items


def _xstest_v2(path: Path) -> list[Item]:
    """The older file has no label column: its unsafe prompts are the ``contrast_*`` types."""
    items = []
    for row in read_csv(path, ("id_v1", "id_v2", "type", "prompt", "focus", "note")):
        kind: Kind = "harmful" if row["type"].strip().startswith("contrast_") else "benign"
        items.append(_xstest_item(row["id_v2"].strip().removeprefix("v2-"), row, kind))
    return items


def _xstest_item(item_id: str, row: Mapping[str, str], kind: Kind) -> Item:
    meta = {k: row[k] for k in ("focus", "note") if row.get(k, "").strip()}
    category = row["type"].strip() or None
    return Item(id=item_id, prompt=row["prompt"], kind=kind, category=category, meta=meta)


XSTEST = Benchmark(
    name="xstest",
    aliases=("exaggerated-safety",),
    description="XSTest: 250 safe prompts that look unsafe (benign) + 200 unsafe contrasts",
    source="https://github.com/paul-rottger/exaggerated-safety (hf: Paul/XSTest)",
    licence="CC BY 4.0 (prompts)",
    kind="over-refusal",
    layout=XSTEST_LAYOUT,
    reader=read_xstest,
    options={"pair": PAIR_OPTION},
    remote=Remote(
        (
            RemoteFile(
                XSTEST_CSV, urls=(f"{GITHUB}/paul-rottger/exaggerated-safety/main/{XSTEST_CSV}",)
            ),
        )
    ),
)

# ---------------------------------------------------------------- MOSSBench
MOSS_INFO = "images_information/information.json"
MOSS_CONTRAST = "data_contrast"
MOSS_LAYOUT = (
    f"{MOSS_INFO}, images/{{pid}}.png [, {MOSS_CONTRAST}/{MOSS_INFO}, {MOSS_CONTRAST}/images/]"
)
MOSS_RAW = f"{GITHUB}/xirui-li/MOSSBench/main"


def _moss_base(root: Path, subset: str) -> Path:
    return root / MOSS_CONTRAST if subset == "contrast" else root


def read_mossbench(root: Path | None, opts: Mapping[str, Any], _limit: int | None) -> list[Item]:
    assert root is not None
    subset = opts["subset"]
    base = _moss_base(root, subset)
    path = need(base / MOSS_INFO, MOSS_LAYOUT)
    image_root = opts["image_root"] or base
    items = []
    for key, record in entries(read_json(path), path, "entries keyed by pid"):
        where = f"{path} [{key}]"
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        metadata = record.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        pid = text(record.get("pid", key)).strip() or key
        items.append(
            Item(
                id=pid if subset == "benign" else f"contrast-{pid}",
                prompt=text(field(record, "question", where)),
                image=image_root / text(field(record, "image", where)).strip(),
                kind="benign" if subset == "benign" else "harmful",
                category=text(metadata.get("over")).strip() or None,
                caption=record.get("description") or None,
                meta={k: v for k, v in metadata.items() if k != "over"},
            )
        )
    return finish(items, f"mossbench ({subset})")


def _moss_images(root: Path, opts: Mapping[str, Any]) -> Sequence[RemoteFile]:
    if opts["image_root"] is not None:
        return []
    subset = opts["subset"]
    prefix = "" if subset == "benign" else f"{MOSS_CONTRAST}/"
    remote_dir = "data" if subset == "benign" else MOSS_CONTRAST
    info = entries(read_json(root / prefix / MOSS_INFO), root / prefix / MOSS_INFO, "entries")
    images = sorted({text(r.get("image")).strip() for _, r in info if isinstance(r, dict)} - {""})
    return [RemoteFile(f"{prefix}{i}", urls=(f"{MOSS_RAW}/{remote_dir}/{i}",)) for i in images]


MOSSBENCH = Benchmark(
    name="mossbench",
    description="MOSSBench: 300 benign requests whose images contain a harmless trigger "
    "(over-sensitivity); subset=contrast gives the 244 harmful counterparts",
    source="https://github.com/xirui-li/MOSSBench (hf: AIcell/MOSSBench)",
    licence="CC BY-SA 4.0, test-set use only",
    kind="over-refusal",
    layout=MOSS_LAYOUT,
    reader=read_mossbench,
    options={
        "subset": Option(
            "benign", "benign (300) or contrast (harmful)", choices=("benign", "contrast")
        ),
        "image_root": Option(
            None,
            "folder the entries' image paths are relative to (default root, or "
            "root/data_contrast for subset=contrast)",
            type="path",
        ),
    },
    remote=Remote(
        (
            RemoteFile(MOSS_INFO, urls=(f"{MOSS_RAW}/data/{MOSS_INFO}",)),
            RemoteFile(
                f"{MOSS_CONTRAST}/{MOSS_INFO}", urls=(f"{MOSS_RAW}/{MOSS_CONTRAST}/{MOSS_INFO}",)
            ),
        ),
        _moss_images,
    ),
)

BENCHMARKS = (XSTEST, MOSSBENCH)
