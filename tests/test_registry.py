"""The generic registry: lazy targets, aliases, providers, did-you-mean, refused duplicates; and
the domain registries built on it (benchmarks, judges, families, bundled models, presets)."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

import pytest

from cmrm.base.errors import ConfigError, UnknownNameError
from cmrm.base.registry import Registry, RegistryError, import_target, instance_of
from cmrm.data import get_benchmark, list_benchmarks, parse_spec
from cmrm.data.registry import BENCHMARKS, register_benchmark
from cmrm.data.safety import VLSAFE
from cmrm.evaluation.config import default_judge
from cmrm.evaluation.options import build_config
from cmrm.evaluation.presets import PRESETS, get_preset
from cmrm.interventions import operators
from cmrm.interventions.operators import BUILT_IN, OPERATORS
from cmrm.judges import JUDGES, get_judge, list_judges
from cmrm.models import FAMILY_REGISTRY, MODELS, family_for


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A throwaway importable module ``regplugin_<n>``; returns its name."""
    name = f"regplugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            VALUE = 42
            CALLS = []

            def provide():
                CALLS.append(1)
                return {"zoo:cat": 1, "zoo:dog": 2}

            def bad_provider():
                return {"cat": 1}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_values_aliases_and_did_you_mean() -> None:
    reg: Registry[int] = Registry("colour", check=instance_of(int))
    reg.register("red", 1, description="pure red", aliases=("rouge", "Rot"))
    reg.register("green", 2)
    assert reg.get("red") == reg.get("rouge") == reg.get("Rot") == 1
    assert reg.canonical("rouge") == "red" and "rouge" in reg and "blue" not in reg
    assert reg.names() == ["red", "green"] and reg.entry("red").description == "pure red"
    with pytest.raises(UnknownNameError, match=r"unknown colour 'gren'\. Did you mean 'green'\?"):
        reg.get("gren")
    with pytest.raises(UnknownNameError, match="Did you mean 'Rot'"):  # aliases, any case
        reg.get("ROT")
    with pytest.raises(KeyError):  # UnknownNameError is also a KeyError
        reg.get("nothing-like-it")


def test_duplicates_and_bad_targets_are_refused() -> None:
    reg: Registry[int] = Registry("colour")
    reg.register("red", 1, aliases=("rouge",))
    for name, aliases in (("red", ()), ("rouge", ()), ("blue", ("red",)), ("teal", ("t", "t"))):
        with pytest.raises(RegistryError):
            reg.register(name, 3, aliases=aliases)
    with pytest.raises(RegistryError, match="package.module:attr"):
        reg.register("blue", "not a target")
    assert reg.names() == ["red"]


def test_lazy_targets_import_on_first_use(plugin: str) -> None:
    reg: Registry[int] = Registry("number", check=instance_of(int))
    reg.register("answer", f"{plugin}:VALUE")
    reg.register("missing", f"{plugin}_nope:VALUE")
    reg.register("wrong", f"{plugin}:CALLS")
    assert plugin not in sys.modules and reg.entry("answer").lazy
    assert reg.get("answer") == 42 and plugin in sys.modules
    with pytest.raises(RegistryError, match="cannot import"):
        reg.get("missing")
    with pytest.raises(RegistryError, match="expected a int, got list"):
        reg.get("wrong")
    with pytest.raises(RegistryError, match="has no attribute"):
        import_target(f"{plugin}:NOPE")


def test_providers_serve_a_prefix_lazily(plugin: str) -> None:
    reg: Registry[int] = Registry("animal")
    reg.register("owl", 0)
    reg.add_provider("zoo:", f"{plugin}:provide", description="zoo animals")
    assert plugin not in sys.modules and reg.names(providers=False) == ["owl"]
    assert reg.prefixes() == ["zoo:"] and plugin not in sys.modules
    assert reg.get("zoo:dog") == 2 and reg.entry("zoo:cat").provider == "zoo:"
    assert reg.names() == ["owl", "zoo:cat", "zoo:dog"]
    assert reg.entry("zoo:cat").description == "zoo animals"
    assert sys.modules[plugin].CALLS == [1]  # called once, then cached
    with pytest.raises(UnknownNameError, match="Did you mean 'zoo:cat'"):
        reg.get("zoo:cta")
    bad: Registry[int] = Registry("animal")
    bad.add_provider("bad:", f"{plugin}:bad_provider")
    with pytest.raises(RegistryError, match="does not start with 'bad:'"):
        bad.get("bad:cat")
    for prefix in ("zoo:", "zoo:x", "z"):
        with pytest.raises(RegistryError, match="overlaps"):
            reg.add_provider(prefix, f"{plugin}:provide")
    with pytest.raises(RegistryError, match="provider prefix"):
        reg.register("zoo:eel", 3)
    with pytest.raises(RegistryError, match="covers registered"):
        reg.add_provider("ow", f"{plugin}:provide")


def test_benchmark_registry_aliases_and_default_judges() -> None:
    reg: Registry = Registry("benchmark")
    register_benchmark(dataclasses.replace(VLSAFE, aliases=("VLSafe-paper",)), reg)
    assert reg.get("VLSafe-paper").name == "vlsafe"
    assert get_benchmark("scienceqa").default_judge == "mc"
    assert get_benchmark("mm-vet").default_judge == "reference"
    assert get_benchmark("organism:val-image-qa").default_judge == "organism"
    assert default_judge("organism:val-harmful-image") == "organism"
    assert parse_spec("organism:val-harmful-text:eval")[2] == "eval"
    names = [b.name for b in list_benchmarks()]
    assert names.index("jsonl") < names.index("organism:harmful-text")  # providers last
    assert BENCHMARKS.prefixes() == ["organism:", "organism-smol:"]
    with pytest.raises(UnknownNameError, match="Did you mean 'organism:val-image-qa'"):
        get_benchmark("organism:val-imageqa")


def test_judge_family_model_preset_and_operator_registries() -> None:
    assert [n for n, _ in list_judges()][-2:] == [
        "organism",
        "organism-smol",
    ] and "organism" in JUDGES
    assert get_judge("organism").name == "organism"
    with pytest.raises(ConfigError, match="takes no options"):
        get_judge("organism", strict=True)
    assert FAMILY_REGISTRY.get("llava").model_types == ("llava",)
    assert family_for("qwen2_5_vl").name == "qwen2_5_vl"
    assert MODELS.names() == ["organism", "organism-smol"] and MODELS.entry("organism").lazy
    assert PRESETS.names() == ["paper"] and get_preset("paper")("m").methods[0] == "none"
    with pytest.raises(ConfigError, match="Did you mean 'paper'"):
        build_config("m", preset="papre")
    assert OPERATORS.kind == "operator"
    # the built-ins in their order, then every other module of the package, alphabetically: a
    # new operator module is registered with nothing else to edit (no list here to extend)
    modules = {
        p.stem.replace("_", "-")
        for p in Path(operators.__file__).parent.glob("*.py")
        if p.stem not in ("__init__", "base")
    }
    assert OPERATORS.names() == [*BUILT_IN, *sorted(modules - set(BUILT_IN))]
    assert {"alphasteer", "conditional-project", "mars"} <= set(OPERATORS.names())
    assert BUILT_IN == ("add", "project", "norm-preserving", "gated", "conditional")
    loaders: Registry[object] = Registry("loader", callables=True)
    loaders.register("number", 3)
    with pytest.raises(RegistryError, match="must be callable"):
        loaders.get("number")
