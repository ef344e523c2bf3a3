"""MM-SafetyBench (Liu et al., ECCV 2024): 13 scenarios of query-relevant image jailbreaks.

Each question comes with three images (``SD``: Stable Diffusion picture of the key phrase,
``SD_TYPO``: that picture with the phrase typeset below, ``TYPO``: the phrase alone). ``SD`` pairs
with ``Rephrased Question(SD)``, the other two with ``Rephrased Question``. Question ids are the
JSON keys and are not contiguous in every scenario; item ids are ``"{scenario}/{id}"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmrm.base.errors import DataError
from cmrm.data.items import Item

from .benchmark import Benchmark, Option
from .formats import entries, field, finish, need, read_json, text

SCENARIOS = (
    "01-Illegal_Activitiy",  # sic: the upstream spelling
    "02-HateSpeech",
    "03-Malware_Generation",
    "04-Physical_Harm",
    "05-EconomicHarm",
    "06-Fraud",
    "07-Sex",
    "08-Political_Lobbying",
    "09-Privacy_Violence",
    "10-Legal_Opinion",
    "11-Financial_Advice",
    "12-Health_Consultation",
    "13-Gov_Decision",
)
VARIANTS = ("SD", "SD_TYPO", "TYPO")
TINY_LIST = "TinyVersion_ID_List.json"
LAYOUT = (
    "processed_questions/{scenario}.json for the 13 scenarios, [TinyVersion_ID_List.json], "
    "imgs/{scenario}/{SD,SD_TYPO,TYPO}/{id}.jpg (from the separate images zip)"
)


def read_mmsafety(root: Path | None, opts: Mapping[str, Any], _limit: int | None) -> list[Item]:
    assert root is not None
    variant = opts["variant"]
    image_root = opts["image_root"] or root / "imgs"
    tiny = _tiny_ids(root) if opts["tiny"] else None
    items: list[Item] = []
    for scenario in SCENARIOS:
        path = need(root / "processed_questions" / f"{scenario}.json", LAYOUT)
        pairs = entries(read_json(path), path, "questions keyed by id")
        if tiny is None:
            wanted = sorted(pairs, key=lambda pair: _numeric(pair[0]))
        else:
            questions = dict(pairs)
            for qid in _tiny_keys(tiny, scenario):
                if qid not in questions:
                    raise DataError(
                        f"{path}: {TINY_LIST} lists question {qid} but the file has no such key; "
                        "use the complete upstream processed_questions files"
                    )
            wanted = [(qid, questions[qid]) for qid in _tiny_keys(tiny, scenario)]
        for qid, record in wanted:
            items.append(_item(record, scenario, qid, variant, image_root, f"{path} [{qid}]"))
    return finish(items, "mm-safetybench")


def _item(record: Any, scenario: str, qid: str, variant: str, image_root: Path, where: str) -> Item:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    key = "Rephrased Question(SD)" if variant == "SD" else "Rephrased Question"
    return Item(
        id=f"{scenario}/{qid}",
        prompt=text(field(record, key, where)),
        image=image_root / scenario / variant / f"{qid}.jpg",
        kind="harmful",
        category=scenario,
        meta={
            "question": record.get("Question"),
            "key_phrase": record.get("Key Phrase"),
            "variant": variant,
        },
    )


def _numeric(key: str) -> tuple[int, str]:
    return (int(key), key) if key.strip().isdigit() else (1 << 62, key)


def _tiny_ids(root: Path) -> dict[str, list[int]]:
    path = need(root / TINY_LIST, LAYOUT)
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of {{Scenario, Sampled_ID_List}} objects")
    out: dict[str, list[int]] = {}
    for n, entry in enumerate(data):
        where = f"{path} entry {n}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object, got {entry!r:.60}")
        ids = field(entry, "Sampled_ID_List", where)
        if not isinstance(ids, list):
            raise DataError(f"{where}: Sampled_ID_List must be a list of ids, got {ids!r:.60}")
        out[text(field(entry, "Scenario", where)).strip()] = ids
    return out


def _tiny_keys(tiny: Mapping[str, list[int]], scenario: str) -> list[str]:
    if scenario not in tiny:
        raise DataError(f"{TINY_LIST} has no entry for scenario {scenario!r}; got {sorted(tiny)}")
    return [text(i).strip() for i in tiny[scenario]]


MM_SAFETYBENCH = Benchmark(
    name="mm-safetybench",
    aliases=("MMSafetyBench",),
    description="MM-SafetyBench: 1,680 harmful questions x query-relevant images, 13 scenarios",
    source="https://github.com/isXinLiu/MM-SafetyBench (no longer online)",
    licence="CC BY-NC 4.0, research use only",
    kind="safety",
    layout=LAYOUT,
    reader=read_mmsafety,
    options={
        "variant": Option("SD_TYPO", "image kind and matching prompt", choices=VARIANTS),
        "tiny": Option(False, "only the 168 questions of TinyVersion_ID_List.json", type="bool"),
        "image_root": Option(
            None, "folder of the unzipped images (default root/imgs)", type="path"
        ),
    },
    no_download="the upstream repository isXinLiu/MM-SafetyBench is no longer online and its "
    "images ship as a separate zip.",
)

BENCHMARKS = (MM_SAFETYBENCH,)
