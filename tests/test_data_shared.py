"""The loaders against the real upstream samples in ``shared/benchmarks``.

Where the samples are: ``$CMRM_SHARED_BENCHMARKS``, else ``../shared/benchmarks`` beside the
repository. Without them these tests are skipped with a reason that says where they were looked
for; when ``CMRM_SHARED_BENCHMARKS`` is set and the folder is not there, they fail instead (CI sets
it, and ``.ci/run`` also fails if any of them was skipped).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cmrm.base.errors import DataError
from cmrm.data import get_benchmark
from cmrm.data.images import load_image

ENV = "CMRM_SHARED_BENCHMARKS"
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get(ENV) or REPO.parent / "shared" / "benchmarks").expanduser()
_FOUND = (SHARED / "README.md").is_file() and (SHARED / "vlsafe").is_dir()
if os.environ.get(ENV) and not _FOUND:
    pytest.fail(
        f"{ENV}={os.environ[ENV]} does not hold the benchmark samples (no README.md and vlsafe/ "
        "there); point it at the shared/benchmarks folder or unset it",
        pytrace=False,
    )
pytestmark = pytest.mark.skipif(
    not _FOUND,
    reason=f"real benchmark samples not found at {SHARED} (no README.md and vlsafe/ there); "
    f"set {ENV}=DIR to the shared/benchmarks folder to run these tests",
)

# name, folder, options, expected count (the samples hold 20 records per file)
CASES = [
    ("vlsafe", "vlsafe", {}, 20),
    ("vlsafe", "vlsafe", {"file": "alignment"}, 20),
    ("forbidden-questions", "forbidden_question_set", {}, 20),
    ("figstep", "figstep", {}, 20),
    ("figstep-tiny", "figstep", {}, 20),
    ("harmbench", "harmbench", {}, 20),
    ("mm-safetybench", "mm_safetybench", {}, 13 * 20),
    ("xstest", "xstest", {}, 20),
    ("mossbench", "mossbench", {}, 20),
    ("mossbench", "mossbench", {"subset": "contrast"}, 20),
    ("scienceqa", "scienceqa", {"subset": "all"}, 20),
    ("llava-bench-coco", "llava_bench_coco", {}, 20),
    ("mm-vet", "mm_vet", {}, 20),
]


@pytest.mark.parametrize(("name", "folder", "options", "count"), CASES)
def test_real_sample_loads(name: str, folder: str, options: dict[str, str], count: int) -> None:
    items = get_benchmark(name).load(SHARED / folder, **options)
    assert len(items) == count
    assert len({i.id for i in items}) == count
    assert all(i.prompt.strip() and i.kind in ("harmful", "benign") for i in items)


def test_real_sample_details() -> None:
    forbidden = get_benchmark("forbidden-questions").load(SHARED / "forbidden_question_set")
    assert {i.category for i in forbidden} == {"Illegal Activity"}
    assert [i.id for i in forbidden] == [f"0-{n}" for n in range(20)]
    xstest = get_benchmark("xstest").load(SHARED / "xstest")
    assert [i.kind for i in xstest] == ["benign"] * 20
    figstep = {i.id: i for i in get_benchmark("figstep").load(SHARED / "figstep")}
    for item_id in ("1-1", "1-6", "1-14"):
        assert load_image(figstep[item_id].image) is not None
    moss = {i.id: i for i in get_benchmark("mossbench").load(SHARED / "mossbench")}
    assert load_image(moss["131"].image) is not None  # WebP behind .png
    mm = get_benchmark("mm-safetybench").load(SHARED / "mm_safetybench", variant="SD")
    assert load_image(mm[0].image) is not None
    sqa = get_benchmark("scienceqa").load(SHARED / "scienceqa")
    assert sqa and all(i.image is not None for i in sqa)
    assert all(i.answer is not None and 0 <= int(i.answer) < len(i.choices or ()) for i in sqa)
    vet = {i.id: i for i in get_benchmark("mm-vet").load(SHARED / "mm_vet")}
    assert vet["v1_0"].reference == "-1<AND>-5" and vet["v1_2"].image == vet["v1_1"].image


def test_real_tiny_list_against_truncated_sample_is_an_error() -> None:
    """The sample keeps ids 0-19 only; the tiny list names later ids, which must not pass silently."""
    with pytest.raises(DataError, match="TinyVersion_ID_List.json lists question"):
        get_benchmark("mm-safetybench").load(SHARED / "mm_safetybench", tiny=True)


def test_real_xstest_v2_matches_current(tmp_path: Path) -> None:
    (tmp_path / "xstest_v2_prompts.csv").write_bytes(
        (SHARED / "xstest/xstest_v2_prompts.csv").read_bytes()
    )
    older = get_benchmark("xstest").load(tmp_path)
    current = get_benchmark("xstest").load(SHARED / "xstest")
    assert [(i.id, i.prompt, i.kind) for i in older] == [(i.id, i.prompt, i.kind) for i in current]
