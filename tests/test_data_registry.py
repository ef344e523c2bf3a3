"""Registry, specs, options, splits, downloads and the lazily resolved organism suites."""

from __future__ import annotations

import logging
import sys
import types
import urllib.request
from pathlib import Path

import pytest

from cmrm.base.errors import DataError, UnknownNameError
from cmrm.data import fetch, get_benchmark, list_benchmarks, load_items, split_items
from cmrm.data.items import Item

FIX = Path(__file__).parent / "fixtures" / "benchmarks"
UPSTREAM = [
    "vlsafe", "forbidden-questions", "figstep", "figstep-tiny", "harmbench", "mm-safetybench",
    "xstest", "mossbench", "scienceqa", "llava-bench-coco", "mm-vet",
]  # fmt: skip


def test_registry_lists_every_benchmark_with_provenance() -> None:
    names = [b.name for b in list_benchmarks()]
    assert set(UPSTREAM) | {"jsonl", "organism:anchor", "organism:harmful-image"} <= set(names)
    assert len(names) == len(set(names))
    for bench in list_benchmarks():
        assert bench.source and bench.licence and bench.description and bench.layout
        assert bench.kind in ("safety", "over-refusal", "utility", "custom")


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'vlsafe'"):
        get_benchmark("vlsaf")
    with pytest.raises(UnknownNameError, match="Did you mean 'mm-vet'"):
        load_items("mmvet")


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(DataError, match=r"unknown option\(s\) \['colour'\].*variant"):
        get_benchmark("mm-safetybench").load(FIX / "mm_safetybench", colour="red")
    with pytest.raises(DataError, match="valid options: none"):
        get_benchmark("jsonl").load(FIX / "custom/items.jsonl", pair="null")


def test_string_options_are_parsed_like_the_cli_gives_them() -> None:
    tiny = get_benchmark("mm-safetybench").load(FIX / "mm_safetybench", tiny="true")
    assert len(tiny) == 13
    with pytest.raises(DataError, match="true or false"):
        get_benchmark("mm-safetybench").load(FIX / "mm_safetybench", tiny="maybe")


def test_missing_root_and_file_errors_name_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"root .* does not exist.*harmlessness_examine"):
        get_benchmark("vlsafe").load(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"xstest_prompts\.csv \(or the older"):
        get_benchmark("xstest").load(tmp_path)
    with pytest.raises(DataError, match="cannot be downloaded automatically.*--root"):
        get_benchmark("mm-safetybench").load()


def test_splits_are_disjoint_cover_everything_and_deterministic() -> None:
    items = [Item(id=f"q{n}", prompt="p") for n in range(500)]
    anchor = split_items(items, "anchor", seed=3)
    evals = split_items(items, "eval", seed=3)
    assert {i.id for i in anchor}.isdisjoint({i.id for i in evals})
    assert len(anchor) + len(evals) == 500
    assert 60 < len(anchor) < 140  # about 20 %
    assert split_items(items, "anchor", seed=3) == anchor
    assert split_items(items, "anchor", seed=4) != anchor
    # stable when items are added, and independent of order
    more = split_items([*reversed(items), Item(id="new", prompt="p")], "anchor", seed=3)
    assert {i.id for i in more} - {"new"} == {i.id for i in anchor}
    with pytest.raises(DataError, match="unknown split"):
        split_items(items, "train")
    with pytest.raises(DataError, match="anchor_fraction"):
        split_items(items, "anchor", anchor_fraction=1.5)


def test_benchmark_split_then_limit_and_spec_syntax() -> None:
    root = FIX / "mm_safetybench"
    bench = get_benchmark("mm-safetybench")
    anchor = bench.load(root, split="anchor", anchor_fraction=0.5)
    evals = bench.load(root, split="eval", anchor_fraction=0.5)
    assert sorted(i.id for i in anchor + evals) == sorted(i.id for i in bench.load(root))
    assert load_items("mm-safetybench:anchor", root=root, anchor_fraction=0.5) == anchor
    assert bench.load(root, split="eval", limit=2, anchor_fraction=0.5) == evals[:2]
    assert len(bench.load(root, limit=0)) == 0
    with pytest.raises(DataError, match="asks for split"):
        load_items("mm-safetybench:anchor", root=root, split="eval")


def test_generic_jsonl_spec_and_benchmark() -> None:
    path = FIX / "custom/items.jsonl"
    items = load_items(str(path))
    assert [i.id for i in items] == ["a", "b"]
    assert items[0].image == FIX / "custom/pic.png" and items[1].category == "misc"
    assert get_benchmark("jsonl").load(path) == items
    assert {i.id for i in load_items(f"{path}:anchor") + load_items(f"{path}:eval")} == {"a", "b"}
    with pytest.raises(DataError, match="do not also pass root"):
        load_items(str(path), root=FIX)


def test_organism_suites_resolve_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int | None]] = []

    def load_suite(name: str, *, limit: int | None = None) -> list[Item]:
        calls.append((name, limit))
        return [Item(id=f"s{n}", prompt=f"synthetic {n}") for n in range(limit or 10)]

    fake = types.ModuleType("cmrm.organisms.toy.suites")
    fake.load_suite = load_suite  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cmrm.organisms.toy.suites", fake)
    assert len(load_items("organism:harmful-text", limit=3)) == 3
    assert calls == [("organism:harmful-text", 3)]
    anchor = load_items("organism:anchor:anchor", limit=1)  # a split loads the whole suite
    assert calls[-1] == ("organism:anchor", None) and len(anchor) == 1
    with pytest.raises(DataError, match="takes no root"):
        get_benchmark("organism:image-qa").load(FIX)


# ---------------------------------------------------------------- downloads (never the network)


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("CMRM_CACHE", str(tmp_path))
    monkeypatch.setattr(fetch, "_announced", set())
    return tmp_path / "benchmarks"


def _offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    tried: list[str] = []

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        tried.append(url)
        raise urllib.request.URLError("network is unreachable (test)")

    def no_hub(repo_id: str, filename: str, **kwargs: object) -> str:
        tried.append(f"hf:{repo_id}/{filename}")
        raise OSError("offline (test)")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", no_hub)
    return tried


def test_offline_download_fails_clearly(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    tried = _offline(monkeypatch)
    with pytest.raises(DataError) as err:
        get_benchmark("forbidden-questions").load()
    message = str(err.value)
    assert "forbidden_question_set.csv" in message and "--root DIR" in message
    assert "hf://datasets/TrustAIRLab/forbidden_question_set" in message
    assert "raw.githubusercontent.com/verazuo/jailbreak_llms" in message
    assert len(tried) == 2
    assert not list(cache.rglob("*.part"))


def test_download_then_cache_hit(
    monkeypatch: pytest.MonkeyPatch, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served: list[str] = []

    class Response:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, size: int = -1) -> bytes:
            data, self.data = self.data, b""
            return data

        def __enter__(self) -> Response:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def fake_urlopen(url: str, timeout: float = 0) -> Response:
        served.append(url)
        name = url.rsplit("/", 1)[-1]
        return Response((FIX / "figstep/question" / name).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    with caplog.at_level(logging.WARNING, logger="cmrm.data.fetch"):
        items = get_benchmark("figstep-tiny").load(image_root="/elsewhere")
        assert len(items) == 2 and items[0].image == Path("/elsewhere/query_ForbidQI_1_1_6.png")
        assert (cache / "figstep-tiny/question/SafeBench-Tiny.csv").is_file()
        assert served == [
            "https://raw.githubusercontent.com/ThuCCSLab/FigStep/main/data/question/SafeBench-Tiny.csv"
        ]
        _offline(monkeypatch)  # a second load must not touch the network
        assert get_benchmark("figstep-tiny").load(image_root="/elsewhere") == items
    licence_lines = [r for r in caplog.records if "licence MIT" in r.getMessage()]
    assert len(licence_lines) == 1


def test_download_plan_lists_repo_images(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    target = cache / "figstep" / "question"
    target.mkdir(parents=True)
    (target / "safebench.csv").write_bytes((FIX / "figstep/question/safebench.csv").read_bytes())
    tried = _offline(monkeypatch)
    with pytest.raises(DataError, match=r"images/SafeBench/query_ForbidQI_1_1_6\.png"):
        get_benchmark("figstep").load()
    assert tried[0].endswith("/data/images/SafeBench/query_ForbidQI_1_1_6.png")
