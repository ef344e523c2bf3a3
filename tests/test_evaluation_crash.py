"""A run SIGKILLed mid-generation and mid-judging, then resumed, equals an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import test_evaluation_fakes as fakes

ROOT = Path(__file__).resolve().parent.parent


def _count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _start(run_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CMRM_FAKE_SLEEP": "0.03"}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.test_evaluation_fakes", str(run_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_when(proc: subprocess.Popen[bytes], path: Path, rows: int) -> int:
    deadline = time.monotonic() + 60
    while _count(path) < rows:
        if proc.poll() is not None:
            raise AssertionError(f"run ended before the kill: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "no rows appeared"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return _count(path)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    fakes.run(reference)
    run = tmp_path / "run"
    gens, judg = run / "generations.jsonl", run / "judgments.jsonl"
    done = _kill_when(_start(run), gens, 10)  # killed while generating
    total = _count(reference / "generations.jsonl")
    assert 10 <= done < total
    _kill_when(_start(run), judg, 7)  # resumed, then killed while judging
    assert _count(gens) == total and _count(judg) < total
    fakes.run(run)  # resume to the end
    for name in ("generations.jsonl", "judgments.jsonl", "summary.json"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
