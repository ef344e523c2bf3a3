"""Utility benchmarks (benign, with references): ScienceQA-IMG, LLaVA-Bench (COCO), MM-Vet."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmrm.base.errors import DataError
from cmrm.data.items import Item

from .benchmark import Benchmark, Option
from .fetch import Remote, RemoteFile
from .formats import entries, field, finish, mapping, need, read_json, read_jsonl, text

GITHUB = "https://raw.githubusercontent.com"

# ---------------------------------------------------------------- ScienceQA
SQA_PROBLEMS, SQA_SPLITS, SQA_LLAVA = "problems.json", "pid_splits.json", "llava_test_CQM-A.json"
SQA_LAYOUT = (
    f"{SQA_PROBLEMS} + {SQA_SPLITS} and/or {SQA_LLAVA}; images/test/{{pid}}/image.png "
    "(images from the separate ScienceQA download)"
)
SQA_SUFFIX = "Answer with the option's letter from the given choices directly."
_ANSWER = re.compile(r"^\(?([A-Z])\)?\.?$|answer is \(?([A-Z])\)?", re.IGNORECASE)


def read_scienceqa(root: Path | None, opts: Mapping[str, Any], _limit: int | None) -> list[Item]:
    assert root is not None
    source = opts["source"]
    if source == "auto":
        source = "problems" if (root / SQA_PROBLEMS).is_file() else "llava"
    image_root = opts["image_root"] or root / "images" / "test"
    items = (
        _sqa_problems(root, image_root) if source == "problems" else _sqa_llava(root, image_root)
    )
    items = finish(items, "scienceqa")
    return [i for i in items if i.image is not None] if opts["subset"] == "img" else items


def _sqa_prompt(question: str, hint: str, choices: tuple[str, ...]) -> str:
    context = f"Context: {hint}\n" if hint else ""
    options = "\n".join(f"{chr(65 + n)}. {c}" for n, c in enumerate(choices))
    return f"{context}{question}\n{options}\n{SQA_SUFFIX}"


def _sqa_answer(value: Any, count: int, where: str) -> int:
    """``answer`` of problems.json: an index into the choices (an int, or digits as text)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < count):
        raise DataError(f"{where}: answer must index the {count} choices, got {value!r}")
    return value


def _sqa_problems(root: Path, image_root: Path) -> list[Item]:
    problems_path = need(root / SQA_PROBLEMS, SQA_LAYOUT)
    splits_path = need(root / SQA_SPLITS, SQA_LAYOUT)
    problems = mapping(read_json(problems_path), problems_path, "problems keyed by pid")
    test_ids = field(
        mapping(read_json(splits_path), splits_path, "split lists"), "test", str(splits_path)
    )
    if not isinstance(test_ids, list):
        raise DataError(
            f"{splits_path}: 'test' must be a list of problem ids, got {test_ids!r:.60}"
        )
    items = []
    for pid in test_ids:
        where = f"{problems_path} [{pid}]"
        problem = problems.get(str(pid))
        if not isinstance(problem, dict):
            raise DataError(
                f"{where}: test id listed in {SQA_SPLITS} but absent from {SQA_PROBLEMS}"
            )
        raw_choices = field(problem, "choices", where)
        if not isinstance(raw_choices, list) or not raw_choices:
            raise DataError(f"{where}: choices must be a non-empty list, got {raw_choices!r:.60}")
        choices = tuple(text(c) for c in raw_choices)
        image = problem.get("image")
        items.append(
            Item(
                id=str(pid),
                prompt=_sqa_prompt(
                    text(field(problem, "question", where)), text(problem.get("hint")), choices
                ),
                image=image_root / str(pid) / str(image) if image else None,
                kind="benign",
                category=problem.get("subject") or None,
                choices=choices,
                answer=_sqa_answer(field(problem, "answer", where), len(choices), where),
                meta={
                    k: problem[k] for k in ("grade", "topic", "category", "skill") if k in problem
                },
            )
        )
    return items


def _turn(turns: list[Any], role: str, index: int, where: str) -> str:
    """The value of the first ``role`` turn (``human``/``gpt``), else of turn ``index``."""
    for turn in turns:
        if isinstance(turn, dict) and turn.get("from") == role:
            return text(turn.get("value"))
    turn = turns[index]
    if not isinstance(turn, dict):
        raise DataError(f"{where}: turn {index} must be an object, got {turn!r:.60}")
    return text(turn.get("value"))


def _sqa_llava(root: Path, image_root: Path) -> list[Item]:
    path = need(root / SQA_LLAVA, SQA_LAYOUT)
    records = read_json(path)
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of LLaVA conversations")
    items = []
    for n, record in enumerate(records):
        where = f"{path} entry {n}"
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        where = f"{path} entry {n} (id {record.get('id')!r})"
        turns = field(record, "conversations", where)
        if not (isinstance(turns, list) and len(turns) >= 2):
            raise DataError(f"{where}: expected a human turn and a gpt turn, got {turns!r:.80}")
        question, hint, choices = parse_llava_question(_turn(turns, "human", 0, where), where)
        reply = _turn(turns, "gpt", 1, where).strip()
        match = _ANSWER.search(reply)
        letter = (match.group(1) or match.group(2)).upper() if match else ""
        if not (letter and ord(letter) - 65 < len(choices)):
            raise DataError(
                f"{where}: the gpt turn must give one of the letters A-{chr(64 + len(choices))}, "
                f"got {reply!r:.60}"
            )
        image = record.get("image")
        items.append(
            Item(
                id=text(field(record, "id", where)).strip(),
                prompt=_sqa_prompt(question, hint, choices),
                image=image_root / str(image) if image else None,
                kind="benign",
                choices=choices,
                answer=ord(letter) - 65,
            )
        )
    return items


def _marker(letter: str) -> re.Pattern[str]:
    """A choice line's start: ``\\nB.`` then a space, a line end or the end of the text."""
    return re.compile(rf"\n{letter}\.(?: |(?=\n)|$)")


def _split_choices(block: str) -> list[str]:
    """``"A. x\\nB. y\\ny2"`` -> ``["x", "y\\ny2"]``: each choice runs to the next letter's
    marker, so a choice may span several lines (``"A. See you soon,\\nJanet"``)."""
    out: list[str] = []
    rest = block.removeprefix("A.").removeprefix(" ")
    letter = "B"
    while (match := _marker(letter).search(rest)) is not None:
        out.append(rest[: match.start()])
        rest = rest[match.end() :]
        letter = chr(ord(letter) + 1)
    out.append(rest)
    return out


def parse_llava_question(value: str, where: str) -> tuple[str, str, tuple[str, ...]]:
    """Split LLaVA's ``[<image>\\n][Context: hint\\n]question\\nA. x\\nB. y...`` into
    (question, hint, choices).

    Any part may span several lines. The choices start at the last ``\\nA. `` that is followed
    by a ``\\nB. ``; each choice runs to the next letter's marker. The hint is the first line
    after ``Context: `` (the rest joins the question: the two cannot be told apart here, and the
    prompt rebuilt from them is the same text).

    Raises:
        DataError: no ``A. ... B. ...`` choice lines.
    """
    body = value.replace("\r\n", "\n").rstrip("\n")
    body = body.removeprefix("<image>").lstrip("\n") if body.startswith("<image>") else body
    body = body.removesuffix("<image>").rstrip("\n")
    starts = [m.start() for m in _marker("A").finditer(body)]
    for start in reversed(starts):
        choices = _split_choices(body[start + 1 :])
        if len(choices) >= 2:
            break
    else:
        raise DataError(
            f"{where}: no 'A. ...' and 'B. ...' choice lines at the end of the question "
            f"{body[-80:]!r}"
        )
    head = body[:start]
    hint = ""
    if head.startswith("Context: "):
        first, _, rest = head.partition("\n")
        hint, head = first.removeprefix("Context: "), rest
    return head, hint, tuple(choices)


SCIENCEQA = Benchmark(
    name="scienceqa",
    aliases=("ScienceQA-IMG", "SQA-IMG"),
    description="ScienceQA test split; subset=img (default) keeps the 2,017 problems with an image",
    source="https://github.com/lupantech/ScienceQA (data/scienceqa/)",
    licence="CC BY-NC-SA 4.0",
    kind="utility",
    layout=SQA_LAYOUT,
    reader=read_scienceqa,
    options={
        "subset": Option("img", "img (problems with an image) or all", choices=("img", "all")),
        "source": Option(
            "auto",
            f"auto ({SQA_PROBLEMS} if present), problems, or llava ({SQA_LLAVA})",
            choices=("auto", "problems", "llava"),
        ),
        "image_root": Option(None, "folder of test images (default root/images/test)", type="path"),
    },
    remote=Remote(
        tuple(
            RemoteFile(f, urls=(f"{GITHUB}/lupantech/ScienceQA/main/data/scienceqa/{f}",))
            for f in (SQA_PROBLEMS, SQA_SPLITS)
        )
    ),
)

# ---------------------------------------------------------------- LLaVA-Bench (COCO)
QA90_Q, QA90_A = "qa90_questions.jsonl", "qa90_gpt4_answer.jsonl"
COCO_LAYOUT = f"{QA90_Q}, {QA90_A}, val2014/ (COCO val2014 images, either naming style)"
LLAVA_RAW = f"{GITHUB}/haotian-liu/LLaVA/main/playground/data/coco2014_val_qa_eval"


def coco_val2014_image(image_root: Path, name: str) -> Path:
    """``000000441147.jpg`` as found in ``image_root``: the bare name if that file exists,
    else the official val2014 name ``COCO_val2014_000000441147.jpg``."""
    if name.startswith("COCO_val2014_") or (image_root / name).exists():
        return image_root / name
    return image_root / f"COCO_val2014_{name}"


def read_llava_bench(root: Path | None, opts: Mapping[str, Any], _limit: int | None) -> list[Item]:
    assert root is not None
    q_path, a_path = need(root / QA90_Q, COCO_LAYOUT), need(root / QA90_A, COCO_LAYOUT)
    answers = {
        text(field(r, "question_id", f"{a_path} record {n}")).strip(): text(r.get("text"))
        for n, r in enumerate(read_jsonl(a_path))
    }
    image_root = opts["image_root"] or root / "val2014"
    items = []
    for n, record in enumerate(read_jsonl(q_path)):
        qid = text(field(record, "question_id", f"{q_path} record {n}")).strip()
        where = f"{q_path} [{qid}]"
        if qid not in answers:
            raise DataError(f"{a_path}: no GPT-4 answer for question_id {qid} of {q_path}")
        name = text(field(record, "image", where)).strip()
        items.append(
            Item(
                id=qid,
                prompt=text(field(record, "text", where)),
                image=coco_val2014_image(image_root, name),
                kind="benign",
                category=record.get("category") or None,
                reference=answers[qid],
                meta={"image_name": name},
            )
        )
    return finish(items, "llava-bench-coco")


LLAVA_BENCH = Benchmark(
    name="llava-bench-coco",
    aliases=("LLaVA-Bench (COCO)", "llava-bench", "qa90"),
    description="LLaVA-Bench (COCO): 90 questions on 30 COCO val2014 images, GPT-4 references",
    source="https://github.com/haotian-liu/LLaVA (playground/data/coco2014_val_qa_eval/)",
    licence="Apache-2.0 code; GPT-4-generated data under OpenAI terms; images COCO (CC BY 4.0)",
    kind="utility",
    layout=COCO_LAYOUT,
    reader=read_llava_bench,
    options={"image_root": Option(None, "COCO val2014 folder (default root/val2014)", type="path")},
    remote=Remote(tuple(RemoteFile(f, urls=(f"{LLAVA_RAW}/{f}",)) for f in (QA90_Q, QA90_A))),
)

# ---------------------------------------------------------------- MM-Vet
MMVET_JSON = "mm-vet.json"
MMVET_LAYOUT = f"{MMVET_JSON}, images/v1_*.png|jpg"
MMVET_RAW = f"{GITHUB}/yuweihao/MM-Vet_data/main"


def read_mmvet(root: Path | None, opts: Mapping[str, Any], _limit: int | None) -> list[Item]:
    assert root is not None
    path = need(root / MMVET_JSON, MMVET_LAYOUT)
    image_root = opts["image_root"] or root / "images"
    items = []
    for key, record in entries(read_json(path), path, "questions keyed by id"):
        where = f"{path} [{key}]"
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        raw = record.get("capability") or []
        capability = [text(c) for c in ([raw] if isinstance(raw, str) else raw)]
        items.append(
            Item(
                id=key,
                prompt=text(field(record, "question", where)),
                image=image_root / text(field(record, "imagename", where)).strip(),
                kind="benign",
                category=",".join(capability) or None,
                reference=text(field(record, "answer", where)),
                meta={"capability": capability, "imagesource": record.get("imagesource")},
            )
        )
    return finish(items, "mm-vet")


def _mmvet_images(root: Path, opts: Mapping[str, Any]) -> list[RemoteFile]:
    if opts["image_root"] is not None:
        return []
    data = entries(read_json(root / MMVET_JSON), root / MMVET_JSON, "questions")
    names = sorted(
        {text(r.get("imagename")).strip() for _, r in data if isinstance(r, dict)} - {""}
    )
    return [RemoteFile(f"images/{n}", urls=(f"{MMVET_RAW}/images/{n}",)) for n in names]


MM_VET = Benchmark(
    name="mm-vet",
    description="MM-Vet: 218 open-ended questions on 200 images; reference answers may combine "
    "alternatives with <AND>/<OR>",
    source="https://github.com/yuweihao/MM-Vet (data: yuweihao/MM-Vet_data)",
    licence="CC BY-NC 4.0 (data), Apache-2.0 (code)",
    kind="utility",
    layout=MMVET_LAYOUT,
    reader=read_mmvet,
    options={"image_root": Option(None, "folder of the images (default root/images)", type="path")},
    remote=Remote((RemoteFile(MMVET_JSON, urls=(f"{MMVET_RAW}/{MMVET_JSON}",)),), _mmvet_images),
)

BENCHMARKS = (SCIENCEQA, LLAVA_BENCH, MM_VET)
