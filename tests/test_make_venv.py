"""``make venv`` (which ``make demo`` runs first) prints no pip resolver ERROR block for the
wheels it installs ``--no-deps`` on purpose, and says in one line why their requirements are
missing. Checked on the Makefile's real recipe (``make -n``: printed, not run) and by running
scripts/check_env.py against this environment, where those wheels sit without their
dependencies."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def recipe() -> list[list[str]]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(
        ["make", "-n", "-B", "venv", "test-engines"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [shlex.split(line) for line in out.splitlines() if line and not line.startswith("#")]


def data_wheels(lines: list[list[str]]) -> list[str]:
    # the venv's data wheels: the first --no-deps install (test-engines' transformers-4 overlay
    # into its own --target folder comes later)
    install = next(w for w in lines if "--no-deps" in w)
    return [w for w in install[install.index("--no-deps") + 1 :] if not w.startswith("-")]


def test_no_install_can_print_the_resolver_error_block() -> None:
    lines = recipe()
    installs = [w for w in lines if w[1:4] == ["-m", "pip", "install"]]
    assert len(installs) >= 4
    for words in installs:
        upgrading_pip = words[-1] == "pip"  # nothing depends on pip
        assert "--no-deps" in words or "--no-warn-conflicts" in words or upgrading_pip, words
    no_deps = next(i for i, w in enumerate(lines) if "--no-deps" in w)
    after = lines[no_deps + 1 :]
    rest = after[: next(i for i, w in enumerate(after) if w[0] == "touch")]
    assert [w[1] for w in rest] == ["scripts/check_env.py"], "the data wheels install last"
    assert rest[0][2:] == data_wheels(lines)


def test_check_env_explains_the_missing_requirements_in_one_line() -> None:
    wheels = data_wheels(recipe())
    names = [w.split("==")[0] for w in wheels]
    raw = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    ).stdout
    if not any(line.startswith(tuple(f"{n} " for n in names)) for line in raw.splitlines()):
        pytest.skip("the data wheels are not installed without their dependencies here")
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_env.py"), *wheels],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = out.stdout.splitlines()
    notes = [line for line in lines if line.startswith("note:")]
    assert len(notes) == 1 and all(n in notes[0] for n in names) and "expected" in notes[0]
    assert not [line for line in lines if not line.startswith(("note:", "warning:"))]
    assert not any(n in line for line in lines[1:] for n in names)  # none of their 30+ lines
    assert "ERROR" not in out.stdout + out.stderr
