"""The `cmrm serve` command: bad options are one clear error; the real command serves and stops
cleanly on SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image
from typer.testing import CliRunner

from cmrm.cli import app
from cmrm.serve.server import running_server

from .serving import organism_and_shift, user

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--operator", "project"], 1, "--operator only applies with a shift"),
        (["--sample-level", "--operator", "project"], 1, "needs the safety axes"),
        (["--sample-level", "--operator", "mul"], 1, "unknown operator 'mul'"),
        (["--shift", "nowhere"], 1, "shift.json is missing"),
        (["--sample-level", "--positions", "middle"], 1, "positions must be one of"),
    ],
)
def test_bad_options(args: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, ["serve", "organism", *args])
    assert result.exit_code == code
    assert message in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_command_wires_its_options_into_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: the command's real app is served on a free port (instead of blocking on
    --port) and answers one request through the official client."""
    import cmrm.serve.server as server_module

    _, shift = organism_and_shift()
    shift_dir = shift.save(tmp_path / "shift")
    seen: dict[str, object] = {}

    def serve_once(app: object, host: str, port: int, log_level: str = "info") -> None:
        seen.update(host=host, port=port)
        with running_server(app) as base:
            client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
            seen["reply"] = client.chat.completions.create(
                model="cmrm-organism",
                messages=user("what colour is the shape ?", Image.new("RGB", (32, 32), "red")),
                temperature=0,
                max_tokens=5,
                extra_body={"cmrm": {"alpha": 0.25}},
            )
            client.close()

    monkeypatch.setattr(server_module, "serve_forever", serve_once)
    result = runner.invoke(
        app,
        [
            "serve",
            "organism",
            "--shift",
            str(shift_dir),
            "--alpha",
            "0.5",
            "--port",
            "8123",
            "--served-model-name",
            "cmrm-organism",
            "--allow-override",
            "--max-alpha",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    record = seen["reply"].model_extra["cmrm"]  # type: ignore[attr-defined]
    assert record["method"] == "dataset" and record["alpha"] == 0.25 and record["overridden"]


@pytest.mark.slow
def test_the_command_serves_and_stops_cleanly(tmp_path: Path) -> None:
    """The real command in its own process (slow: a fresh interpreter imports torch)."""
    _, shift = organism_and_shift()
    shift_dir = shift.save(tmp_path / "shift")
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "cmrm",
        "serve",
        "organism",
        "--shift",
        str(shift_dir),
        "--alpha",
        "0.5",
        "--port",
        str(port),
        "--served-model-name",
        "cmrm-organism",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="cmrm-organism",
            messages=user("what colour is the shape ?", Image.new("RGB", (32, 32), "red")),
            temperature=0,
            max_tokens=5,
        )
        record = reply.model_extra["cmrm"]
        assert record["method"] == "dataset" and record["alpha"] == 0.5 and record["shifted"]
        client.close()
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()[-2000:]
    assert "serving organism as 'cmrm-organism'" in err.decode()
