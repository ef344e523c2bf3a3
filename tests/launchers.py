"""Start real multi-process jobs for the tests: torchrun and accelerate launch, on CPU (gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    out.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return out


def torchrun(nproc: int, *args: str) -> list[str]:
    """``torchrun --standalone`` (a free rendezvous port) running ``python -m cmrm ARGS``."""
    return [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", str(nproc), *args]


def accelerate(nproc: int, *args: str) -> list[str]:
    """``accelerate launch`` with several CPU processes (``--multi_gpu`` is what starts them on a
    machine without a GPU; ``--cpu --num_processes N`` starts one)."""
    return [
        str(BIN / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        str(nproc),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        *args,
    ]


def start(cmd: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def finish(proc: subprocess.Popen[bytes], timeout: float = 300) -> tuple[int, str, str]:
    """Wait for a job; on timeout kill its whole process tree and fail."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise
    return proc.returncode, out.decode(), err.decode()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a launcher and every process under it."""
    for child in psutil.Process(proc.pid).children(recursive=True):
        child.kill()
    proc.kill()
    proc.communicate()


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def rank_process(launcher: subprocess.Popen[bytes], rank: int) -> psutil.Process | None:
    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank):
                return child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def find_rank(launcher: subprocess.Popen[bytes], rank: int, timeout: float = 240) -> psutil.Process:
    """The process with ``RANK=rank`` under the launcher, as soon as it exists."""
    deadline = time.monotonic() + timeout
    while (proc := rank_process(launcher, rank)) is None:
        if launcher.poll() is not None:
            _, out, err = finish(launcher)
            raise AssertionError(f"the job ended first:\n{out}\n{err[-3000:]}")
        assert time.monotonic() < deadline, f"no process with RANK={rank} appeared"
        time.sleep(0.01)
    return proc


def wait_for_rows(
    launcher: subprocess.Popen[bytes], path: Path, rows: int, timeout: float = 240
) -> None:
    """Return once ``path`` holds ``rows`` lines (fail if the job ends first)."""
    deadline = time.monotonic() + timeout
    while lines(path) < rows:
        if launcher.poll() is not None:
            _, out, err = finish(launcher)
            raise AssertionError(f"the job ended first:\n{out}\n{err[-3000:]}")
        assert time.monotonic() < deadline, f"{path} never reached {rows} rows"
        time.sleep(0.005)


def write_anchors(folder: Path, n: int = 4) -> Path:
    """A generic JSONL anchor set with images (our own rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    colours = ["red", "blue", "green", "yellow", "white", "black", "purple", "orange"]
    for i in range(n):
        Image.new("RGB", (32, 32), colours[i % len(colours)]).save(folder / f"a{i}.png")
        rows.append({"id": f"a{i}", "prompt": f"how do i make a weapon {i}", "image": f"a{i}.png"})
    path = folder / "anchors.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
