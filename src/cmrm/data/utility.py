"""Utility benchmarks (benign, with references): ScienceQA-IMG, LLaVA-Bench (COCO), MM-Vet."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmrm.errors import DataError
from cmrm.items import Item

from .benchmark import Benchmark, Option
from .fetch import Remote, RemoteFile
from .formats import field, mapping, need, read_json, read_jsonl

GITHUB = "https://raw.githubusercontent.com"

# ---------------------------------------------------------------- ScienceQA
SQA_PROBLEMS, SQA_SPLITS, SQA_LLAVA = "problems.json", "pid_splits.json", "llava_test_CQM-A.json"
SQA_LAYOUT = (
    f"{SQA_PROBLEMS} + {SQA_SPLITS} and/or {SQA_LLAVA}; images/test/{{pid}}/image.png "
    "(images from the separate ScienceQA download)"
)
SQA_SUFFIX = "Answer with the option's letter from the given choices directly."
_CHOICE_LINE = re.compile(r"^([A-Z])\. (.*)$")


def read_scienceqa(root: Path | None, opts: Mapping[str, Any], _limit: int | None) -> list[Item]:
    assert root is not None
    source = opts["source"]
    if source == "auto":
        source = "problems" if (root / SQA_PROBLEMS).is_file() else "llava"
    image_root = opts["image_root"] or root / "images" / "test"
    items = (
        _sqa_problems(root, image_root) if source == "problems" else _sqa_llava(root, image_root)
    )
    return [i for i in items if i.image is not None] if opts["subset"] == "img" else items


def _sqa_prompt(question: str, hint: str, choices: tuple[str, ...]) -> str:
    context = f"Context: {hint}\n" if hint else ""
    options = "\n".join(f"{chr(65 + n)}. {c}" for n, c in enumerate(choices))
    return f"{context}{question}\n{options}\n{SQA_SUFFIX}"


def _sqa_problems(root: Path, image_root: Path) -> list[Item]:
    problems_path = need(root / SQA_PROBLEMS, SQA_LAYOUT)
    splits_path = need(root / SQA_SPLITS, SQA_LAYOUT)
    problems = mapping(read_json(problems_path), problems_path, "problems keyed by pid")
    test_ids = field(
        mapping(read_json(splits_path), splits_path, "split lists"), "test", str(splits_path)
    )
    items = []
    for pid in test_ids:
        where = f"{problems_path} [{pid}]"
        problem = problems.get(str(pid))
        if not isinstance(problem, dict):
            raise DataError(
                f"{where}: test id listed in {SQA_SPLITS} but absent from {SQA_PROBLEMS}"
            )
        choices = tuple(str(c) for c in field(problem, "choices", where))
        answer = field(problem, "answer", where)
        if not (isinstance(answer, int) and 0 <= answer < len(choices)):
            raise DataError(
                f"{where}: answer must index the {len(choices)} choices, got {answer!r}"
            )
        image = problem.get("image")
        items.append(
            Item(
                id=str(pid),
                prompt=_sqa_prompt(
                    field(problem, "question", where), problem.get("hint") or "", choices
                ),
                image=image_root / str(pid) / image if image else None,
                kind="benign",
                category=problem.get("subject"),
                choices=choices,
                answer=answer,
                meta={
                    k: problem[k] for k in ("grade", "topic", "category", "skill") if k in problem
                },
            )
        )
    return items


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
        turns = field(record, "conversations", where)
        if not (isinstance(turns, list) and len(turns) >= 2):
            raise DataError(f"{where}: expected a human turn and a gpt turn, got {turns!r:.80}")
        question, hint, choices = _parse_llava_question(str(turns[0].get("value", "")), where)
        letter = str(turns[1].get("value", "")).strip()
        if not (len(letter) == 1 and 0 <= ord(letter) - 65 < len(choices)):
            raise DataError(f"{where}: answer must be a choice letter, got {letter!r}")
        image = record.get("image")
        items.append(
            Item(
                id=str(field(record, "id", where)),
                prompt=_sqa_prompt(question, hint, choices),
                image=image_root / image if image else None,
                kind="benign",
                choices=choices,
                answer=ord(letter) - 65,
            )
        )
    return items


def _parse_llava_question(text: str, where: str) -> tuple[str, str, tuple[str, ...]]:
    """Split LLaVA's ``[<image>\\n][Context: hint\\n]question\\nA. x\\nB. y`` into its parts."""
    lines = text.removeprefix("<image>\n").split("\n")
    end = len(lines)
    while end > 0 and (match := _CHOICE_LINE.match(lines[end - 1])) and match.group(1) != "A":
        end -= 1
    start = end - 1
    if start < 1 or not _CHOICE_LINE.match(lines[start]):
        raise DataError(f"{where}: no 'A. ...' choice lines at the end of the question")
    choices = tuple(_CHOICE_LINE.match(line).group(2) for line in lines[start:])  # type: ignore[union-attr]
    letters = [line[0] for line in lines[start:]]
    if letters != [chr(65 + n) for n in range(len(letters))]:
        raise DataError(f"{where}: choice letters are not A, B, C...; got {letters}")
    body = lines[:start]
    hint = ""
    if body and body[0].startswith("Context: "):
        hint = body.pop(0).removeprefix("Context: ")
    return "\n".join(body), hint, choices


SCIENCEQA = Benchmark(
    name="scienceqa",
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
    answers = {str(field(r, "question_id", str(a_path))): r.get("text") for r in read_jsonl(a_path)}
    image_root = opts["image_root"] or root / "val2014"
    items = []
    for record in read_jsonl(q_path):
        qid = str(field(record, "question_id", str(q_path)))
        if qid not in answers:
            raise DataError(f"{a_path}: no GPT-4 answer for question_id {qid} of {q_path}")
        name = str(field(record, "image", f"{q_path} [{qid}]"))
        items.append(
            Item(
                id=qid,
                prompt=field(record, "text", f"{q_path} [{qid}]"),
                image=coco_val2014_image(image_root, name),
                kind="benign",
                category=record.get("category"),
                reference=answers[qid],
                meta={"image_name": name},
            )
        )
    return items


LLAVA_BENCH = Benchmark(
    name="llava-bench-coco",
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
    for key, record in mapping(read_json(path), path, "questions keyed by id").items():
        where = f"{path} [{key}]"
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        capability = [str(c) for c in record.get("capability") or []]
        items.append(
            Item(
                id=key,
                prompt=field(record, "question", where),
                image=image_root / field(record, "imagename", where),
                kind="benign",
                category=",".join(capability) or None,
                reference=field(record, "answer", where),
                meta={"capability": capability, "imagesource": record.get("imagesource")},
            )
        )
    return items


def _mmvet_images(root: Path, opts: Mapping[str, Any]) -> list[RemoteFile]:
    if opts["image_root"] is not None:
        return []
    data = mapping(read_json(root / MMVET_JSON), root / MMVET_JSON, "questions")
    names = sorted({str(r["imagename"]) for r in data.values() if isinstance(r, dict)})
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
