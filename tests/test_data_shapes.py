"""Every loader against invented rows of every shape its upstream format allows.

The 20-row samples in ``shared/benchmarks`` cannot show what full files hold: fields that span
lines, empty or missing fields, extra keys and columns, Unicode line separators inside JSON
strings, a BOM, CRLF, ids that repeat, quotes in CSV, images shared between rows, WebP named
``.png``. Each test writes such rows (all invented) and checks what the loader yields.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from PIL import Image

from cmrm.base.errors import DataError
from cmrm.data import get_benchmark
from cmrm.data.images import load_image
from cmrm.data.utility import parse_llava_question

BOM = "\ufeff"


def write(path: Path, text: str, *, newline: str = "\n", bom: bool = False) -> Path:
    """Write ``text`` (LF line ends) with the given line ends, optionally with a UTF-8 BOM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (BOM if bom else "") + text.replace("\n", newline)
    path.write_bytes(data.encode("utf-8"))
    return path


def test_vlsafe_jsonl_shapes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        {"image_id": "000000000001.jpg", "caption": "a cat", "query": "line one\u2028line two"},
        {"image_id": 2, "query": "an int image id, no caption", "extra": [1, 2]},
        {"image_id": "000000000003.jpg", "caption": "", "query": "   "},  # empty: skipped
        {"image_id": "000000000004.jpg", "caption": "ünïcödé ✓", "query": "Wie geht's? 你好"},
    ]
    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:2])
    body += "\n\n" + "\n".join(json.dumps(r, ensure_ascii=False) for r in rows[2:])
    write(tmp_path / "harmlessness_examine.jsonl", body, newline="\r\n", bom=True)
    with caplog.at_level(logging.WARNING):
        items = get_benchmark("vlsafe").load(tmp_path)
    assert [i.id for i in items] == ["0", "1", "3"]
    assert items[0].prompt == "line one\u2028line two"  # U+2028 is not a line end in JSONL
    assert items[1].image == tmp_path / "train2017/000000000002.jpg"
    assert items[1].caption is None and items[2].caption == "ünïcödé ✓"
    assert "empty prompt" in caplog.text and "['2']" in caplog.text


def test_forbidden_questions_csv_shapes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    csv = (
        " content_policy_id , content_policy_name,q_id,question\n"
        '0,Illegal Activity,0,"Spans\ntwo lines, with a comma"\n'
        '0,Illegal Activity,1,"Quotes ""inside"" it"\n'
        "0,Illegal Activity,2\n"  # a short row: no question, skipped
        "2,Hate Speech,0,plain,extra field\n"
        "2,Hate Speech,0,plain\n"  # an exact repeat: dropped
        "2,Hate Speech,0,other text under the same id\n"  # renamed 2-0#2
        "\n"
        "3,Malware,7,no final newline"
    )
    write(tmp_path / "forbidden_question_set.csv", csv, newline="\r\n", bom=True)
    with caplog.at_level(logging.WARNING):
        items = get_benchmark("forbidden-questions").load(tmp_path, pair="none")
    assert [i.id for i in items] == ["0-0", "0-1", "2-0", "2-0#2", "3-7"]
    assert items[0].prompt == "Spans\ntwo lines, with a comma"
    assert items[1].prompt == 'Quotes "inside" it'
    assert items[2].prompt == "plain" and items[2].category == "Hate Speech"
    assert items[3].prompt == "other text under the same id"
    assert items[4].prompt == "no final newline"
    assert "exact repeat" in caplog.text and "2-0#2" in caplog.text


def test_figstep_csv_shapes(tmp_path: Path) -> None:
    csv = (
        "dataset,category_id,task_id,category_name,question,instruction\n"
        'ForbidQI,1,1,Illegal Activity,"How, exactly?","Steps to\nmanufacture."\n'
        "ForbidQI, 2 , 3 ,Hate Speech,Why?,Steps.\n"
    )
    write(tmp_path / "question/safebench.csv", csv, newline="\r\n")
    items = get_benchmark("figstep").load(tmp_path)
    assert [i.id for i in items] == ["1-1", "2-3"]
    assert items[1].image == tmp_path / "images/SafeBench/query_ForbidQI_2_3_6.png"
    assert items[0].meta["instruction"] == "Steps to\nmanufacture."


def test_harmbench_csv_and_txt_shapes(tmp_path: Path) -> None:
    csv = (
        "Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\n"
        'Give steps,standard,chemical,"a, b",,b_one\n'
        'Summarise it,contextual,misinformation,,"Para one.\n\nPara two, ""quoted"".",b_two\n'
        ",standard,chemical,,,b_empty\n"
    )
    write(tmp_path / "csv/harmbench_behaviors_text_all.csv", csv)
    every = get_benchmark("harmbench").load(tmp_path / "csv", functional="all", pair="none")
    assert [i.id for i in every] == ["b_one", "b_two"]
    assert every[1].prompt == 'Para one.\n\nPara two, "quoted".\n\n---\n\nSummarise it'
    write(tmp_path / "txt/harmbench_prompts.txt", "first\n\n  second  \nthird", newline="\r\n")
    lines = get_benchmark("harmbench").load(tmp_path / "txt", pair="none")
    assert [i.prompt for i in lines] == ["first", "second", "third"]


def test_mm_safetybench_json_shapes(tmp_path: Path) -> None:
    entry = {
        "Question": "Q",
        "GPT-Pred": "[Changed Question]\nx",
        "Changed Question": "c",
        "Key Phrase": "k",
        "Phrase Type": "t",
        "Rephrased Question": "The image shows \u2014 a phrase.",
        "Rephrased Question(SD)": "SD rephrasing",
    }
    one_line = json.dumps({"0": entry, "7": {**entry, "Extra": 1}})
    # a repeated key: valid JSON; both entries are kept, the second as "3#2"
    repeated = '{"3": ' + json.dumps(entry) + ', "3": ' + json.dumps({**entry, "Question": "R"})
    repeated += ', "12": ' + json.dumps({k: v for k, v in entry.items() if k != "Question"}) + "}"
    from cmrm.data.mmsafety import SCENARIOS

    for n, scenario in enumerate(SCENARIOS):
        text = repeated if n == 1 else json.dumps({"0": entry}, indent=4) if n else one_line
        write(tmp_path / "processed_questions" / f"{scenario}.json", text)
    items = get_benchmark("mm-safetybench").load(tmp_path)
    ids = [i.id for i in items]
    assert ids[:2] == [f"{SCENARIOS[0]}/0", f"{SCENARIOS[0]}/7"]
    assert ids[2:5] == [f"{SCENARIOS[1]}/3", f"{SCENARIOS[1]}/3#2", f"{SCENARIOS[1]}/12"]
    assert items[0].prompt == "The image shows \u2014 a phrase."
    assert items[3].meta["question"] == "R" and items[4].meta["question"] is None
    assert len(items) == 2 + 3 + 11


def test_xstest_csv_shapes(tmp_path: Path) -> None:
    csv = (
        "id,prompt,type,label,focus,note\n"
        '1,"How do I kill a Python process, quickly?",homonyms, Safe ,kill,\n'
        "2,¿Cómo está el niño?,safe_contexts,safe,,\n"
        '3,"A prompt\nover two lines",contrast_homonyms,UNSAFE,,a note\n'
    )
    write(tmp_path / "xstest_prompts.csv", csv, newline="\r\n", bom=True)
    items = get_benchmark("xstest").load(tmp_path, pair="none")
    assert [(i.id, i.kind) for i in items] == [("1", "benign"), ("2", "benign"), ("3", "harmful")]
    assert items[0].meta == {"focus": "kill", "pair": "none"}
    assert items[1].meta == {"pair": "none"}  # empty focus and note are left out
    assert items[1].prompt == "¿Cómo está el niño?" and items[2].meta["note"] == "a note"


def test_mossbench_json_shapes(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8), "red").save(images / "1.png", format="WEBP")  # WebP named .png
    info = (
        "{\n"
        '    "1": {"image": "images/1.png", "question": "Is it safe?", "pid": 1,\n'
        '          "metadata": {"over": "type 1", "ocr": 0, "harm": [7] } },\n'
        '    "2": {"question": "Shared image?", "image": "images/1.png", "pid": "2",\n'
        '          "metadata": null, "description": "desc"},\n'
        '    "3": {"pid": "3", "image": "images/1.png", "question": "No metadata"},\n'
        '    "3": {"pid": "3", "image": "images/1.png", "question": "Repeated key"}\n'
        "}"
    )
    write(tmp_path / "images_information/information.json", info)
    items = get_benchmark("mossbench").load(tmp_path)
    assert [i.id for i in items] == ["1", "2", "3", "3#2"]
    assert items[0].category == "type 1" and items[0].meta == {"ocr": 0, "harm": [7]}
    assert items[1].category is None and items[1].caption == "desc"
    assert items[0].image == items[1].image  # one image shared by two rows
    picture = load_image(items[1].image)
    assert picture is not None and picture.size == (8, 8)


def _llava_row(pid: str, human: str, answer: str, image: bool) -> dict[str, object]:
    row: dict[str, object] = {"id": pid}
    if image:
        row["image"] = f"{pid}/image.png"
        human = "<image>\n" + human
    row["conversations"] = [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]
    return row


LLAVA_SHAPES = [
    # the reported failure: choices that span lines
    (
        "512",
        (
            "Context: Read the letter.\nWhich closing is correct?\nA. See you soon,\nJanet\n"
            "B. See You Soon,\nJanet"
        ),
        "A",
        True,
        ("See you soon,\nJanet", "See You Soon,\nJanet"),
    ),
    # a hint over several lines, an empty choice, five choices
    (
        "6",
        "Context: Line one.\nLine two.\nPick one.\nA. \nB. b\nC. c\nD. d\nE. e",
        "E",
        False,
        ("", "b", "c", "d", "e"),
    ),
    # a question that holds a letter and a period ("A.") and a line like a choice label
    ("7", "In 1900 A.D., who?\nB.C. is not a choice\nA. x\nB. y", "B", True, ("x", "y")),
    # a question over lines and no context
    ("8", "First line of the question\nsecond line?\nA. yes\nB. no", "B", False, ("yes", "no")),
]


@pytest.mark.parametrize(("pid", "human", "answer", "image", "choices"), LLAVA_SHAPES)
def test_scienceqa_llava_row_shapes(
    tmp_path: Path, pid: str, human: str, answer: str, image: bool, choices: tuple[str, ...]
) -> None:
    path = tmp_path / "llava_test_CQM-A.json"
    path.write_text(json.dumps([_llava_row(pid, human, answer, image)], indent=2))
    (item,) = get_benchmark("scienceqa").load(tmp_path, subset="all")
    assert item.id == pid and item.choices == choices
    assert item.answer == ord(answer) - 65
    assert (item.image is not None) == image
    assert item.prompt.endswith("Answer with the option's letter from the given choices directly.")
    assert human.removeprefix("<image>\n") in item.prompt  # the text is kept verbatim


def test_scienceqa_llava_reply_and_turn_shapes(tmp_path: Path) -> None:
    rows = [
        {"id": 1, "conversations": [
            {"from": "gpt", "value": "The answer is B."},  # turns in the other order
            {"from": "human", "value": "Q?\nA. a\nB. b"},
        ]},
        {"id": "2", "image": "2/image.png", "extra": True, "conversations": [
            {"from": "human", "value": "Q?\nA. a\nB. b\nC. c\n<image>"},  # image marker last
            {"from": "gpt", "value": " c "},
        ]},
    ]  # fmt: skip
    (tmp_path / "llava_test_CQM-A.json").write_text(json.dumps(rows, ensure_ascii=False))
    items = get_benchmark("scienceqa").load(tmp_path, subset="all")
    assert [(i.id, i.answer, i.choices) for i in items] == [
        ("1", 1, ("a", "b")),
        ("2", 2, ("a", "b", "c")),
    ]
    rows[0]["conversations"][0]["value"] = "D"  # type: ignore[index]
    (tmp_path / "llava_test_CQM-A.json").write_text(json.dumps(rows))
    with pytest.raises(DataError, match=r"entry 0 \(id 1\).*letters A-B, got 'D'"):
        get_benchmark("scienceqa").load(tmp_path, subset="all")
    with pytest.raises(DataError, match="no 'A. ...' and 'B. ...' choice lines"):
        parse_llava_question("Just a question?\nA. only one", "here")


def test_scienceqa_full_llava_file_counts(tmp_path: Path) -> None:
    """A file the size and shape of the real one: 4,241 entries, 2,017 with an image, 41 with
    choices over several lines (all invented); every entry loads."""
    rows = []
    for n in range(4241):
        image = n < 2017
        if n % 100 == 12 and n < 4100:  # 41 such entries
            human = "Which closing?\nA. See you,\nSam\nB. See You,\nSam"
        else:
            human = f"Context: Hint {n}.\nQuestion {n}?\nA. one\nB. two\nC. three"
        rows.append(_llava_row(str(n + 1), human, "BCA"[n % 2], image))
    assert sum("\nSam\n" in r["conversations"][0]["value"] for r in rows) == 41  # type: ignore[index]
    (tmp_path / "llava_test_CQM-A.json").write_text(json.dumps(rows, indent=2))
    bench = get_benchmark("scienceqa")
    assert len(bench.load(tmp_path, subset="all")) == 4241
    assert len(bench.load(tmp_path)) == 2017  # ScienceQA-IMG


def test_scienceqa_problems_json_shapes(tmp_path: Path) -> None:
    problems = {
        "10": {"question": "Which?", "choices": ["See you soon,\nJanet", "b"], "answer": "1",
               "hint": None, "image": "image.png", "task": "closed choice", "split": "test"},
        "11": {"question": "Which?", "choices": ["a", "b"], "answer": 0, "hint": "",
               "image": None, "subject": "language science", "extra": {"x": 1}},
    }  # fmt: skip
    (tmp_path / "problems.json").write_text(json.dumps(problems, indent=4))
    (tmp_path / "pid_splits.json").write_text(json.dumps({"test": [10, "11"], "train": []}))
    items = get_benchmark("scienceqa").load(tmp_path, subset="all")
    assert [(i.id, i.answer) for i in items] == [("10", 1), ("11", 0)]
    assert items[0].choices == ("See you soon,\nJanet", "b") and items[0].category is None
    assert items[0].prompt.startswith("Which?\nA. See you soon,\nJanet\nB. b\n")
    problems["11"]["answer"] = 2
    (tmp_path / "problems.json").write_text(json.dumps(problems))
    with pytest.raises(DataError, match=r"\[11\]: answer must index the 2 choices, got 2"):
        get_benchmark("scienceqa").load(tmp_path, subset="all")


def test_llava_bench_jsonl_shapes(tmp_path: Path) -> None:
    questions = [
        {"question_id": 0, "image": "000000000001.jpg", "text": "Two\nlines ü", "category": "conv"},
        {"question_id": "1", "image": "000000000001.jpg", "text": "Same image, no category"},
    ]
    answers = [{"question_id": "0", "text": "ref 0"}, {"question_id": 1, "text": None}]
    write(tmp_path / "qa90_questions.jsonl", "\n".join(json.dumps(q) for q in questions))
    write(tmp_path / "qa90_gpt4_answer.jsonl", "\n".join(json.dumps(a) for a in answers) + "\n")
    items = get_benchmark("llava-bench-coco").load(tmp_path)
    assert [(i.id, i.category, i.reference) for i in items] == [
        ("0", "conv", "ref 0"),
        ("1", None, ""),
    ]
    assert items[0].prompt == "Two\nlines ü" and items[0].image == items[1].image


def test_mm_vet_json_shapes(tmp_path: Path) -> None:
    data = (
        '{"v1_0": {"imagename": "v1_0.png", "question": "Sum?", "answer": 7, '
        '"capability": "math", "imagesource": "x"},\n'
        ' "v1_1": {"imagename": "v1_0.png", "question": "Again?", "answer": "a<OR>b", '
        '"capability": ["rec", "ocr"]},\n'
        ' "v1_1": {"imagename": "v1_0.png", "question": "Again?", "answer": "a<OR>b", '
        '"capability": ["rec", "ocr"]}}'
    )
    write(tmp_path / "mm-vet.json", data)
    items = get_benchmark("mm-vet").load(tmp_path)
    assert [i.id for i in items] == ["v1_0", "v1_1"]  # the exact repeat is dropped
    assert items[0].reference == "7" and items[0].category == "math"
    assert items[1].category == "rec,ocr" and items[0].image == items[1].image
