"""The up-front checks (layer ranges, devices, output folders, prompts against the context), the
one KEY=VALUE rule, and benchmark aliases."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cmrm.base.errors import ConfigError, DataError, LayerResolutionError, UnknownNameError
from cmrm.base.keyvalue import parse_assignments, split_assignment, typed_value
from cmrm.data import get_benchmark, list_benchmarks, load_items, parse_spec
from cmrm.data.items import Item
from cmrm.evaluation.options import build_config, canonical_spec, parse_options
from cmrm.models import VLM
from cmrm.models.checks import (
    DeviceError,
    check_items,
    check_items_fit,
    check_layers,
    check_output_dir,
    check_prompt_fits,
    resolve_device,
)
from cmrm.models.layers import locate_decoder_layers, parse_layer_spec

from .tiny_models import tiny_llava

FIX = Path(__file__).parent / "fixtures" / "benchmarks"


def test_layer_slices_must_fit_and_select_something() -> None:
    assert parse_layer_spec("-2:", 4) == [2, 3]
    assert parse_layer_spec("0:4", 4) == [0, 1, 2, 3]
    assert parse_layer_spec("1:", 4) == [1, 2, 3]
    for spec, message in [
        ("8:16", "'8:16' is out of range: the model has 4 layers"),
        ("2:16", "out of range"),
        ("3:1", "selects no layer"),
        ("2:2", "selects no layer"),
        ("-1:-3", "selects no layer"),
        (",", "names no layer"),
        ("1:x", "cannot parse"),
    ]:
        with pytest.raises(LayerResolutionError, match=message):
            parse_layer_spec(spec, 4)
    layers = locate_decoder_layers(tiny_llava(text_layers=4))
    with pytest.raises(LayerResolutionError, match="no layer selected"):
        layers.resolve([])
    check_layers("1:3", None)  # syntax only: fine
    with pytest.raises(LayerResolutionError, match="selects no layer"):
        check_layers("3:1", None)  # without the depth: never materialises a huge range
    with pytest.raises(LayerResolutionError, match="layer 7 is out of range"):
        check_layers("1,7", 4)


def test_devices() -> None:
    assert resolve_device(None) is None and resolve_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert resolve_device("auto", "organism") == "cuda"
        assert resolve_device("auto", "llava-hf/x") == "auto"
    else:
        assert resolve_device("auto", "organism") == resolve_device("AUTO", "x") == "cpu"
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(DeviceError, match="unknown device 'cuda:x'"):
        resolve_device("cuda:x")
    with pytest.raises(DeviceError, match="unknown device 'gpu'; use one of cpu, cuda"):
        resolve_device("gpu")


def test_output_folder_checks_create_nothing(tmp_path: Path) -> None:
    new = tmp_path / "a" / "b"
    assert check_output_dir(new) == new and not (tmp_path / "a").exists()
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is an existing file"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "f" / "x")
    with pytest.raises(ConfigError, match="cannot be written: /proc is not writable"):
        check_output_dir("/proc/cmrm-check")
    assert list(tmp_path.iterdir()) == [tmp_path / "f"]


def test_items_and_prompt_length(vlm: VLM, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"2 item\(s\) have an empty prompt \(e.g. \['b', 'c'\]\)"):
        check_items([Item("a", "x"), Item("b", ""), Item("c", "\n ")], "src")
    with pytest.raises(DataError, match=r"src: 1 of 2 image file\(s\) do not exist"):
        check_items([Item("a", "x", image=tmp_path / "no.png"), Item("b", "y")], "src")
    limit = vlm.model.config.get_text_config().max_position_embeddings
    fine, long = Item("ok", "w1 w2"), Item("long", " ".join(["w1"] * limit))
    check_items_fit(vlm, [fine], "src")
    with pytest.raises(DataError, match=rf"src: 1 item\(s\).*context of {limit}.*'long'"):
        check_items_fit(vlm, [fine, long], "src")
    check_prompt_fits(vlm, fine.prompt, None)
    with pytest.raises(DataError, match=f"the prompt is .* tokens .* context of {limit}"):
        check_prompt_fits(vlm, long.prompt, None)


def test_one_key_value_rule() -> None:
    assert split_assignment("a=b=c", "--x") == ("a", "b=c")
    assert split_assignment(" a =", "--x") == ("a", "")
    for bad in ("=x", "novalue", " =1"):
        with pytest.raises(ConfigError, match="--x expects KEY=VALUE"):
            split_assignment(bad, "--x")
    assert [typed_value(v) for v in ("true", "FALSE", "64", "0.5", "null", "nan", "inf", "x")] == [
        True,
        False,
        64,
        0.5,
        "null",
        "nan",
        "inf",
        "x",
    ]
    with pytest.raises(ConfigError, match="gives 'a' twice"):
        parse_assignments(["a=1", "a=2"], "--option")
    assert parse_options(["llm.temperature=nan"], "--judge-option") == {
        "llm": {"temperature": "nan"}
    }
    config = build_config(
        "m",
        benches=["mm-safetybench"],
        methods="none",
        bench_options=["mm-safetybench.tiny=yes", "mm-safetybench.image_root=/i"],
    )
    assert config.bench_options == {"mm-safetybench": {"tiny": True, "image_root": "/i"}}
    with pytest.raises(DataError, match="true or false"):
        build_config("m", benches=["mm-safetybench"], methods="none",
                     bench_options=["mm-safetybench.tiny=maybe"])  # fmt: skip


def test_aliases_resolve_to_the_benchmark() -> None:
    assert get_benchmark("JailbreakLLMs").name == "forbidden-questions"
    assert get_benchmark("jailbreakllms").name == "forbidden-questions"
    assert get_benchmark("ScienceQA-IMG").name == "scienceqa"
    assert get_benchmark("XSTest").name == "xstest"
    assert parse_spec("JailbreakLLMs:anchor")[2] == "anchor"
    names = [b.name for b in list_benchmarks()]
    assert len(names) == len(set(names)) and "JailbreakLLMs" not in names
    root = FIX / "forbidden_question_set"
    assert load_items("JailbreakLLMs", root=root) == load_items("forbidden-questions", root=root)
    with pytest.raises(UnknownNameError, match=r"Did you mean 'JailbreakLLMs' \(forbidden"):
        get_benchmark("JailbreakLLM")
    assert canonical_spec("JailbreakLLMs:eval") == "forbidden-questions:eval"
    assert canonical_spec("not-a-benchmark") == "not-a-benchmark"
    config = build_config(
        "m",
        benches=["JailbreakLLMs", "ScienceQA-IMG"],
        methods="none",
        judges=["ScienceQA-IMG=mc"],
        roots=["JailbreakLLMs=/data/jb"],
        bench_options=["JailbreakLLMs.pair=none"],
    )
    assert config.benchmarks == ("forbidden-questions", "scienceqa")
    assert config.judge_for("scienceqa") == "mc" and config.roots == {
        "forbidden-questions": "/data/jb"
    }
    assert config.bench_options == {"forbidden-questions": {"pair": "none"}}
