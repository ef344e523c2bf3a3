"""The bundled organisms never touch the network, and a model argument that is a typo or a
missing folder fails at once, before any hub request: checked in subprocesses with the network
unreachable (``HF_ENDPOINT`` on a closed port) and ``HF_HUB_OFFLINE`` unset, and any socket
connect turned into a failure, so a single hub lookup shows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cmrm.base.errors import DataError, UnknownNameError
from cmrm.models.checks import peek_num_layers
from cmrm.models.source import model_source

GUARD = """
import socket, sys
def _refuse(self, address):
    sys.stderr.write(f"NETWORK {address}\\n")
    raise OSError("network used")
socket.socket.connect = _refuse
"""


def cmrm_offline(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    guard = tmp_path / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(GUARD)
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    env["PYTHONPATH"] = os.pathsep.join([str(guard), *filter(None, [env.get("PYTHONPATH")])])
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "cmrm", *args],
        check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    return done, time.monotonic() - start


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "organism-smol", "--image", "nope.png", "hi"],
        ["calibrate", "organism-smol", "--anchors", "nope.jsonl", "-o", "s"],
        ["gap", "organism-smol", "--data", "nope.jsonl", "-o", "g"],
    ],
)
def test_organism_smol_is_never_looked_up_on_the_hub(tmp_path: Path, args: list[str]) -> None:
    done, seconds = cmrm_offline(tmp_path, *args)
    assert done.returncode == 1, done.stderr
    assert "NETWORK" not in done.stderr and "Retry" not in done.stderr, done.stderr
    assert "nope" in done.stderr.splitlines()[-1], done.stderr
    assert seconds < 20, seconds


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ("organsim", "Did you mean 'organism'?"),
        ("organism_smol", "Did you mean 'organism-smol'?"),
        ("./mymodel", "local model folder ./mymodel does not exist"),
    ],
)
def test_a_mistyped_model_fails_at_once_without_the_network(
    tmp_path: Path, model: str, fragment: str
) -> None:
    done, seconds = cmrm_offline(tmp_path, "generate", model, "hi")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[-1]] and lines[0].startswith("Error:"), done.stderr
    assert fragment in lines[0]
    assert "NETWORK" not in done.stderr and seconds < 20


def test_model_source_without_the_network(tmp_path: Path) -> None:
    assert model_source("organism-smol") == "bundled"
    assert model_source("llava-hf/llava-1.5-7b-hf") == "hub"
    assert model_source(str(tmp_path)) == "local"
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        model_source(str(tmp_path / "file"))
    with pytest.raises(UnknownNameError, match="organism"):
        model_source("Organisms")
    with pytest.raises(DataError, match="nor a hub id"):
        model_source("my model")
    assert peek_num_layers("organism-smol") is None
