"""Every upstream loader against invented fixtures with the upstream byte-level traps."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmrm.base.errors import DataError
from cmrm.data import get_benchmark
from cmrm.data.images import load_image

FIX = Path(__file__).parent / "fixtures" / "benchmarks"


def test_fixture_traps_are_intact() -> None:
    """Guard against an editor or git normalising the bytes the loaders must cope with."""
    assert (FIX / "figstep/question/SafeBench-Tiny.csv").read_bytes().endswith(b"\r\n")
    assert not (FIX / "figstep/question/safebench.csv").read_bytes().endswith(b"\n")
    v2 = (FIX / "xstest_v2/xstest_v2_prompts.csv").read_bytes()
    assert b"\r\n" in v2 and not v2.endswith(b"\n")
    assert (FIX / "mossbench/images/1.png").read_bytes()[:4] == b"RIFF"
    assert (
        b"\\u2014" in (FIX / "mm_safetybench/processed_questions/05-EconomicHarm.json").read_bytes()
    )


def test_vlsafe_joins_train2017_and_keeps_caption() -> None:
    items = get_benchmark("vlsafe").load(FIX / "vlsafe")
    assert [i.id for i in items] == ["0", "1", "2"]
    assert {i.kind for i in items} == {"harmful"}
    assert items[0].image == FIX / "vlsafe/train2017/000000000101.jpg"
    assert items[0].caption == "A red ball on a lawn."
    assert items[1].prompt == "Placeholder harmful query two about the cups?"
    other = get_benchmark("vlsafe").load(FIX / "vlsafe", image_root="/coco/train2017")
    assert other[0].image == Path("/coco/train2017/000000000101.jpg")
    aligned = get_benchmark("vlsafe").load(FIX / "vlsafe", file="alignment")
    assert [i.reference for i in aligned] == ["Safe reference 0.", "Safe reference 1."]


def test_forbidden_questions_csv_quoting_and_null_pairing() -> None:
    items = get_benchmark("forbidden-questions").load(FIX / "forbidden_question_set")
    assert [i.id for i in items] == ["0-0", "0-1", "2-0", "13-29"]
    assert items[1].prompt == "Placeholder question, with a comma?"
    assert items[2].prompt == 'Placeholder "quoted" question?'
    assert [i.category for i in items][2:] == ["Hate Speech", "Gov Decision"]
    assert all(i.image is None and i.meta["pair"] == "null" for i in items)
    none = get_benchmark("forbidden-questions").load(FIX / "forbidden_question_set", pair="none")
    assert all(i.image is None and i.meta["pair"] == "none" for i in none)


def test_folder_pairing_is_round_robin_over_sorted_files(tmp_path: Path) -> None:
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    items = get_benchmark("forbidden-questions").load(
        FIX / "forbidden_question_set", pair=f"folder:{tmp_path}"
    )
    assert [i.image for i in items] == [tmp_path / n for n in ("a.jpg", "b.png", "a.jpg", "b.png")]
    assert items[1].meta == {"pair": "folder", "pair_image": "b.png"}
    with pytest.raises(DataError, match="folder:DIR"):
        get_benchmark("forbidden-questions").load(FIX / "forbidden_question_set", pair="blank")
    with pytest.raises(DataError, match="does not exist"):
        get_benchmark("harmbench").load(FIX / "harmbench", pair=f"folder:{tmp_path / 'nope'}")


@pytest.mark.parametrize("name", ["figstep", "figstep-tiny"])
def test_figstep_prompt_image_and_question(name: str) -> None:
    items = get_benchmark(name).load(FIX / "figstep")
    assert [i.id for i in items] == ["1-1", "1-2", "2-1"][: 3 if name == "figstep" else 2]
    first = items[0]
    assert first.prompt.startswith("The image shows a list numbered 1, 2, and 3")
    assert first.image == FIX / "figstep/images/SafeBench/query_ForbidQI_1_1_6.png"
    assert first.meta["question"] == "How can someone do placeholder A?"
    assert first.category == "Illegal Activity" and first.kind == "harmful"
    assert load_image(first.image) is not None


def test_harmbench_txt_and_upstream_csv() -> None:
    items = get_benchmark("harmbench").load(FIX / "harmbench")
    assert [i.prompt for i in items][-1] == "Placeholder behaviour three"
    assert [i.id for i in items] == ["0", "1", "2"]
    csv_items = get_benchmark("harmbench").load(FIX / "harmbench_csv")
    assert [i.id for i in csv_items] == ["placeholder_standard_a", "placeholder_standard_d"]
    every = get_benchmark("harmbench").load(FIX / "harmbench_csv", functional="all")
    assert every[1].prompt == (
        "Line one of context.\nLine two, with a comma.\n\n---\n\nPlaceholder contextual behaviour"
    )
    assert every[1].category == "misinformation_disinformation"
    with pytest.raises(DataError, match="only the standard"):
        get_benchmark("harmbench").load(FIX / "harmbench", functional="contextual")


def test_mm_safetybench_variants_ids_and_formats() -> None:
    bench = get_benchmark("mm-safetybench")
    items = bench.load(FIX / "mm_safetybench")
    assert len(items) == 13 * 2 + 1
    assert "08-Political_Lobbying/5" in {i.id for i in items}
    first = items[0]
    assert first.id == "01-Illegal_Activitiy/0"
    assert first.image == FIX / "mm_safetybench/imgs/01-Illegal_Activitiy/SD_TYPO/0.jpg"
    assert first.prompt.startswith("The bottom of the image")
    assert first.meta["question"] == "Placeholder question 0 of 01-Illegal_Activitiy?"
    escaped = next(i for i in items if i.id == "05-EconomicHarm/1")
    assert escaped.meta["question"].endswith("\u2014 caf\u00e9?")
    sd = bench.load(FIX / "mm_safetybench", variant="SD")
    assert sd[0].prompt.startswith("The image shows") and "/SD/0.jpg" in str(sd[0].image)
    tiny = bench.load(FIX / "mm_safetybench", tiny=True, variant="TYPO")
    assert len(tiny) == 13 and "08-Political_Lobbying/5" in {i.id for i in tiny}
    with pytest.raises(DataError, match="one of"):
        bench.load(FIX / "mm_safetybench", variant="sd")


def test_mm_safetybench_missing_scenario_file_names_layout(tmp_path: Path) -> None:
    (tmp_path / "processed_questions").mkdir()
    with pytest.raises(DataError, match=r"01-Illegal_Activitiy\.json does not exist.*imgs/"):
        get_benchmark("mm-safetybench").load(tmp_path)


def test_xstest_current_and_v2_agree() -> None:
    current = get_benchmark("xstest").load(FIX / "xstest", pair="none")
    older = get_benchmark("xstest").load(FIX / "xstest_v2", pair="none")
    for items in (current, older):
        assert [i.id for i in items] == ["1", "2", "3"]
        assert [i.kind for i in items] == ["benign", "benign", "harmful"]
        assert items[1].prompt == "Where can I buy a jalape\u00f1o placeholder?"
        assert items[2].prompt == "Placeholder unsafe contrast, please?"
        assert items[0].category == "homonyms"
        assert "focus" not in items[1].meta
    assert [i.prompt for i in current] == [i.prompt for i in older]


def test_mossbench_webp_named_png_and_contrast() -> None:
    items = get_benchmark("mossbench").load(FIX / "mossbench")
    assert [i.id for i in items] == ["1", "2"]
    assert {i.kind for i in items} == {"benign"}
    assert items[0].image == FIX / "mossbench/images/1.png"
    assert items[0].category == "type 1" and items[0].meta["harm"] == [7]
    assert load_image(items[0].image).size == (8, 6)  # WebP data behind a .png name
    contrast = get_benchmark("mossbench").load(FIX / "mossbench", subset="contrast")
    assert contrast[0].id == "contrast-1" and contrast[0].kind == "harmful"
    assert contrast[0].image == FIX / "mossbench/data_contrast/images/1.png"


def test_scienceqa_problems_and_llava_give_the_same_items() -> None:
    bench = get_benchmark("scienceqa")
    img = bench.load(FIX / "scienceqa")
    assert [i.id for i in img] == ["5", "9"]  # test split, with an image; "1" is train
    assert img[0].image == FIX / "scienceqa/images/test/5/image.png"
    assert img[0].choices == ("one", "two", "three") and img[0].answer == 2
    assert img[0].prompt.startswith("Context: A placeholder passage.\n\nIt has two paragraphs.\n")
    assert img[0].prompt.endswith(
        "C. three\nAnswer with the option's letter from the given choices directly."
    )
    assert img[0].category == "natural science"
    every = bench.load(FIX / "scienceqa", subset="all")
    assert [i.id for i in every] == ["4", "5", "9"] and every[0].image is None
    assert every[0].prompt.startswith(
        "Which placeholder figure of speech?\n\u2014A poet\nA. chiasmus"
    )
    llava = bench.load(FIX / "scienceqa_llava", subset="all")
    assert [(i.id, i.prompt, i.choices, i.answer) for i in llava] == [
        (i.id, i.prompt, i.choices, i.answer) for i in every
    ]
    assert [i.image for i in llava] == [
        None,
        FIX / "scienceqa_llava/images/test/5/image.png",
        FIX / "scienceqa_llava/images/test/9/image.png",
    ]


def test_llava_bench_references_and_both_naming_styles(tmp_path: Path) -> None:
    items = get_benchmark("llava-bench-coco").load(FIX / "llava_bench_coco")
    assert [i.id for i in items] == ["0", "1", "2"]
    assert [i.category for i in items] == ["conv", "detail", "complex"]
    assert items[2].reference == "Reference answer 2."
    assert items[0].image == FIX / "llava_bench_coco/val2014/COCO_val2014_000000000201.jpg"
    (tmp_path / "000000000202.jpg").write_bytes(b"")
    bare = get_benchmark("llava-bench-coco").load(FIX / "llava_bench_coco", image_root=tmp_path)
    assert bare[2].image == tmp_path / "000000000202.jpg"
    assert bare[0].image == tmp_path / "COCO_val2014_000000000201.jpg"


def test_mm_vet_answers_and_shared_images() -> None:
    items = get_benchmark("mm-vet").load(FIX / "mm_vet")
    assert [i.id for i in items] == ["v1_0", "v1_1", "v1_2"]
    assert items[0].reference == "-1<AND>-5" and items[1].reference == "1.25<OR>5/4"
    assert items[0].image == items[1].image == FIX / "mm_vet/images/v1_0.png"
    assert items[1].prompt == "What is y in the placeholder\u2019s equation?"
    assert items[0].category == "ocr,math" and items[2].meta["capability"] == ["rec"]
    assert all(load_image(i.image) is not None for i in items)
