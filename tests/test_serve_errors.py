"""Every bad request gets a 4xx in OpenAI's error schema, and the server keeps serving; the
override policy, image sources and limits (429, 504) hold."""

from __future__ import annotations

import base64
import functools
import http.server
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from cmrm.calibration.shift import ShiftVectors
from cmrm.models import VLM
from cmrm.serve import ImagePolicy, Limits, OverridePolicy, ServedIntervention, ServerConfig

from .serving import data_url, held_worker, organism_and_shift, serving, user

RED = Image.new("RGB", (32, 32), "red")


@pytest.fixture(scope="module")
def organism() -> tuple[VLM, ShiftVectors]:
    return organism_and_shift()


@pytest.fixture(scope="module")
def strict(organism: tuple[VLM, ShiftVectors]) -> Iterator[tuple[openai.OpenAI, str, Any]]:
    """The defaults an operator gets: no overrides, data: URLs only."""
    vlm, shift = organism
    config = ServerConfig(
        "organism",
        ServedIntervention("dataset", shift=shift),
        limits=Limits(max_body_bytes=100_000, max_new_tokens=64),
    )
    with serving(vlm, config) as running:
        yield running


def _create(client: openai.OpenAI, **change: Any) -> Any:
    request: dict[str, Any] = dict(
        model="organism", messages=user("what is this ?", RED), temperature=0, max_tokens=4
    )
    request.update(change)
    return client.chat.completions.create(**request)


def _parts(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


TEXT = {"type": "text", "text": "what is this ?"}
NOT_IMAGE = "data:image/png;base64," + base64.b64encode(b"hello, not a picture").decode()

BAD: dict[str, tuple[dict[str, Any], int, str | None]] = {
    "invalid base64": (
        {
            "messages": _parts(
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}, TEXT
            )
        },
        400,
        "invalid_base64",
    ),
    "not an image": (
        {"messages": _parts({"type": "image_url", "image_url": {"url": NOT_IMAGE}}, TEXT)},
        400,
        "invalid_image",
    ),
    "not a data url": (
        {
            "messages": _parts(
                {"type": "image_url", "image_url": {"url": "data:image/png,abc"}}, TEXT
            )
        },
        400,
        "invalid_image_url",
    ),
    "unknown model": ({"model": "gpt-4o"}, 404, "model_not_found"),
    "too many images": (
        {"messages": _parts(*user("x", RED)[0]["content"][:1] * 2, TEXT)},
        400,
        "too_many_images",
    ),
    "prompt over the context": (
        {"messages": user("red " * 200, RED)},
        400,
        "context_length_exceeded",
    ),
    "prompt plus max_tokens over the context": (
        {"max_tokens": 64, "messages": user("red " * 60, RED)},
        400,
        "context_length_exceeded",
    ),
    "max_tokens zero": ({"max_tokens": 0}, 400, None),
    "max_tokens negative": ({"max_tokens": -3}, 400, None),
    "max_tokens over the limit": ({"max_tokens": 1000}, 400, None),
    "no messages": ({"messages": []}, 400, None),
    "unknown role": ({"messages": [{"role": "tool", "content": "x"}]}, 400, None),
    "audio part": ({"messages": _parts({"type": "input_audio", "input_audio": {}})}, 400, None),
    "image from the assistant": (
        {"messages": [{"role": "assistant", "content": user("x", RED)[0]["content"]}]},
        400,
        None,
    ),
    "local path refused": (
        {"messages": _parts({"type": "image_url", "image_url": {"url": "/etc/passwd"}}, TEXT)},
        400,
        "image_source_not_allowed",
    ),
    "remote url refused": (
        {
            "messages": _parts(
                {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x"}}, TEXT
            )
        },
        400,
        "image_source_not_allowed",
    ),
    "override refused": ({"extra_body": {"cmrm": {"method": "none"}}}, 403, "override_not_allowed"),
    "unknown cmrm field": ({"extra_body": {"cmrm": {"layers": "all"}}}, 400, None),
    "n above one": ({"n": 2}, 400, None),
    "tools": ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, None),
    "logprobs with stream": ({"logprobs": True, "stream": True}, 400, None),
    "top_logprobs too many": ({"logprobs": True, "top_logprobs": 50}, 400, None),
    "temperature out of range": ({"temperature": 5}, 400, None),
    "wrong type": ({"max_tokens": "many"}, 400, None),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_requests_get_a_4xx_in_openai_schema(
    strict: tuple[openai.OpenAI, str, Any], case: str
) -> None:
    client, _, _ = strict
    change, status, code = BAD[case]
    with pytest.raises(openai.APIStatusError) as caught:
        _create(client, **change)
    err = caught.value
    assert err.status_code == status
    body = err.body
    assert isinstance(body, dict) and body["message"] and body["type"]
    assert set(body) >= {"message", "type", "param", "code"}
    if code is not None:
        assert body["code"] == code
    # ... and the server keeps serving
    assert _create(client).choices[0].message.content


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"model": "organism", "messages": "' + b"x" * 200_000 + b'"}', 413, None),
    ],
    ids=["malformed JSON", "empty body", "not an object", "body too large"],
)
def test_malformed_bodies(
    strict: tuple[openai.OpenAI, str, Any], content: bytes, status: int, code: str | None
) -> None:
    _, base, _ = strict
    response = httpx.post(
        f"{base}/v1/chat/completions", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"] and error["type"]
    if code is not None:
        assert error["code"] == code


def test_unknown_routes_answer_in_openai_schema(strict: tuple[openai.OpenAI, str, Any]) -> None:
    _, base, _ = strict
    missing = httpx.post(f"{base}/v1/completions", json={})
    assert missing.status_code == 404 and "error" in missing.json()
    wrong = httpx.get(f"{base}/v1/chat/completions")
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_repeating_the_servers_own_setting_is_not_an_override(
    strict: tuple[openai.OpenAI, str, Any],
) -> None:
    client, _, _ = strict
    reply = _create(client, extra_body={"cmrm": {"method": "dataset", "alpha": 1.0}})
    assert reply.model_extra["cmrm"]["overridden"] is False


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[str]:
    RED.save(tmp_path / "red.png")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_allowed_sources_and_override_policy(
    organism: tuple[VLM, ShiftVectors], tmp_path: Path, image_server: str
) -> None:
    vlm, _ = organism
    RED.save(tmp_path / "red.png")
    outside = tmp_path.parent / "outside.png"
    RED.save(outside)
    config = ServerConfig(
        "organism",
        ServedIntervention("sample"),
        policy=OverridePolicy(allow=True, max_alpha=2.0),
        images=ImagePolicy(local_root=tmp_path, remote=True),
    )
    with serving(vlm, config) as (client, _, _):
        by_data = _create(client).choices[0].message.content
        for url in (
            str(tmp_path / "red.png"),
            f"file://{tmp_path / 'red.png'}",
            f"{image_server}/red.png",
        ):
            reply = _create(client, messages=user("what is this ?", url))
            assert reply.choices[0].message.content == by_data, url
        refused = {
            "outside the root": {"messages": user("what is this ?", str(outside))},
            "missing remote": {"messages": user("what is this ?", f"{image_server}/none.png")},
            "operator without axes": {"extra_body": {"cmrm": {"operator": "project"}}},
            "unknown operator": {"extra_body": {"cmrm": {"operator": "multiply"}}},
            "alpha over the limit": {"extra_body": {"cmrm": {"alpha": 3.0}}},
            "alpha not a number": {"extra_body": {"cmrm": {"alpha": "big"}}},
            "dataset without a shift": {"extra_body": {"cmrm": {"method": "dataset"}}},
        }
        for name, change in refused.items():
            with pytest.raises(openai.BadRequestError) as caught:
                _create(client, **change)
            assert caught.value.body["message"], name
        with pytest.raises(openai.BadRequestError, match="needs the safety axes"):
            _create(client, extra_body={"cmrm": {"operator": "project"}})
        lower = _create(client, extra_body={"cmrm": {"alpha": 0.5}})
        assert lower.model_extra["cmrm"]["alpha"] == 0.5
        assert lower.model_extra["cmrm"]["overridden"] is True


def test_a_full_queue_gets_429(organism: tuple[VLM, ShiftVectors]) -> None:
    vlm, _ = organism
    config = ServerConfig("organism", limits=Limits(max_queue=1, max_batch=1))
    with serving(vlm, config) as (client, _, app), ThreadPoolExecutor(2) as pool:
        with held_worker(vlm) as (entered, release):
            running = pool.submit(_create, client)
            assert entered.wait(30)
            queued = pool.submit(_create, client)
            deadline = time.monotonic() + 30
            while app.state.engine.stats()["waiting"] < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(openai.RateLimitError) as caught:
                _create(client)
            assert caught.value.body["code"] == "queue_full"
            release.set()
            assert running.result().choices[0].message.content
            assert queued.result().choices[0].message.content
        assert _create(client).choices[0].message.content


def test_a_slow_request_times_out_and_the_server_recovers(
    organism: tuple[VLM, ShiftVectors],
) -> None:
    vlm, _ = organism
    config = ServerConfig("organism", limits=Limits(request_timeout_s=0.5))
    with serving(vlm, config) as (client, _, _):
        with held_worker(vlm) as (entered, release):
            with pytest.raises(openai.APIStatusError) as caught:
                _create(client)
            assert caught.value.status_code == 504
            assert entered.is_set()
            stream = _create(client, stream=True)
            with pytest.raises(openai.APIError, match="timeout"):
                for _ in stream:
                    pass
            release.set()
        assert _create(client).choices[0].message.content


def test_data_urls_of_other_formats(strict: tuple[openai.OpenAI, str, Any]) -> None:
    client, _, _ = strict
    png = _create(client).choices[0].message.content
    webp = _create(client, messages=user("what is this ?", data_url(RED, "WEBP")))
    assert webp.choices[0].message.content == png  # a lossless solid colour decodes the same
