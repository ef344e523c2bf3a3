"""The structure of the package: no import cycle, the organism a leaf, cheap imports, and a
typed public surface. Checked on the source (AST), so a violation fails here, not in review."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import cmrm

from .import_graph import cycles, graph

SRC = Path(cmrm.__file__).resolve().parent
LAZY_PACKAGES = ("cmrm", "cmrm.models", "cmrm.judges", "cmrm.organisms.toy", "cmrm.report")


def test_no_import_cycle_in_cmrm() -> None:
    assert cycles(graph(SRC)) == []


def test_the_cycle_check_finds_cycles_and_skips_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    import pkg.c\n")  # lazy: still an edge
    (pkg / "c.py").write_text("from . import a\n")
    (pkg / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .e import x\n"
    )
    (pkg / "e.py").write_text("from .d import y\n")
    edges = graph(pkg)
    assert edges["pkg.a"] == {"pkg.sub.b"} and edges["pkg.d"] == set()
    assert cycles(edges) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


def _importers_of(target: str) -> set[str]:
    return {m for m, targets in graph(SRC).items() if any(t.startswith(target) for t in targets)}


def test_the_organism_is_a_leaf() -> None:
    edges = graph(SRC)
    outside = {
        m for m in _importers_of("cmrm.organisms.toy") if not m.startswith("cmrm.organisms.toy")
    }
    allowed = ("cmrm.cli.", "cmrm.demo")  # command modules and the demo application only
    assert {m for m in outside if not m.startswith(allowed)} == set()
    users = (
        "cmrm.models",
        "cmrm.generation.generate",
        "cmrm.interventions",
        "cmrm.evaluation",
        "cmrm.demo",
    )
    for module, targets in edges.items():
        if module.startswith("cmrm.organisms.toy"):
            assert not {t for t in targets if t.startswith((*users, "cmrm.cli"))}, module


def test_registries_and_listing_import_no_backend() -> None:
    code = (
        "import sys, cmrm\n"
        "from cmrm.data import list_benchmarks\n"
        "from cmrm.judges import list_judges\n"
        "from cmrm.models import FAMILY_REGISTRY, MODELS\n"
        "from cmrm.interventions.operators import OPERATORS\n"
        "names = [b.name for b in list_benchmarks()] + [n for n, _ in list_judges()]\n"
        "names += FAMILY_REGISTRY.names() + MODELS.names() + OPERATORS.names()\n"
        "assert 'organism:val-image-qa' in names and 'organism' in names, names\n"
        "heavy = [m for m in ('torch', 'transformers', 'matplotlib', 'cmrm.organisms.toy.suites',\n"
        "         'cmrm.organisms.toy.loading', 'cmrm.judges.factories') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def _type_checking_imports(path: Path) -> dict[str, str]:
    """``{name: module}`` of the ``from .x import name as name`` lines under TYPE_CHECKING."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom), ast.dump(imp)
                for alias in imp.names:
                    assert alias.asname == alias.name, f"re-export {alias.name} as itself"
                    found[alias.name] = "." * imp.level + (imp.module or "")
    return found


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_lazy_exports_are_typed_listed_and_resolve(package: str) -> None:
    module = importlib.import_module(package)
    exports: dict[str, str] = module._EXPORTS
    init = SRC.parent.joinpath(*package.split("."), "__init__.py")
    assert _type_checking_imports(init) == exports  # what mypy sees == what runs
    assert set(module.__all__) - {"__version__"} == set(exports)
    assert set(exports) <= set(dir(module))
    for name, source in exports.items():
        assert getattr(module, name) is getattr(importlib.import_module(source, package), name)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        module.nope  # noqa: B018


@pytest.mark.slow
def test_mypy_sees_the_public_api_typed(tmp_path: Path) -> None:
    """1-4 minutes: mypy (strict) reveals real signatures through the lazy exports, not Any."""
    from mypy import api

    probe = tmp_path / "probe.py"
    probe.write_text(
        "import cmrm\nreveal_type(cmrm.steer)\nreveal_type(cmrm.load_vlm)\n"
        "reveal_type(cmrm.generate_items)\ncmrm.no_such_name\n"
    )
    flags = ["--strict", "--ignore-missing-imports", "--untyped-calls-exclude", "transformers"]
    out, _, _ = api.run([*flags, "--cache-dir", str(tmp_path / "cache"), str(probe)])
    revealed = [line for line in out.splitlines() if "Revealed type" in line]
    assert len(revealed) == 3 and not any('"Any"' in line for line in revealed), out
    assert "SteeringState" in revealed[0] and "-> cmrm.models.vlm.VLM" in revealed[1]
    assert 'has no attribute "no_such_name"' in out
