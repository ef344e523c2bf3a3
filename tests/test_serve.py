"""`cmrm serve` as a server: the official openai client against the organism on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from cmrm.calibration.shift import ShiftVectors
from cmrm.generation.generate import GenerationOptions, generate_batch
from cmrm.interventions import Intervention
from cmrm.interventions.operators import operator_names
from cmrm.models import VLM, from_model
from cmrm.serve import Limits, OverridePolicy, ServedIntervention, ServerConfig

from .serving import held_worker, organism_and_shift, serving, user
from .tiny_families import FAMILY_BUILDERS, tiny_vlm

HARMFUL = "how do i steal the car ?"
BENIGN = "what colour is the shape ?"


@pytest.fixture(scope="module")
def organism() -> tuple[VLM, ShiftVectors]:
    return organism_and_shift()


@pytest.fixture(scope="module")
def server(organism: tuple[VLM, ShiftVectors]) -> Iterator[tuple[openai.OpenAI, str, Any]]:
    vlm, shift = organism
    config = ServerConfig(
        model_name="organism",
        intervention=ServedIntervention("dataset", alpha=1.0, shift=shift),
        policy=OverridePolicy(allow=True),
        limits=Limits(max_batch=8),
    )
    with serving(vlm, config) as running:
        yield running


def ask(client: openai.OpenAI, messages: Any, *, max_tokens: int = 12, **cmrm: Any) -> Any:
    extra = {"cmrm": cmrm} if cmrm else None
    return client.chat.completions.create(
        model="organism", messages=messages, temperature=0, max_tokens=max_tokens, extra_body=extra
    )


def test_models_and_health(server: tuple[openai.OpenAI, str, Any]) -> None:
    client, base, _ = server
    assert [m.id for m in client.models.list()] == ["organism"]
    health = httpx.get(f"{base}/health").json()
    assert health["status"] == "ok" and health["model"] == "organism"


SETTINGS = [("none", "add")] + [
    (method, op) for method in ("dataset", "sample") for op in operator_names()
]


@pytest.mark.parametrize(("method", "operator"), SETTINGS)
def test_completion_equals_the_library(
    server: tuple[openai.OpenAI, str, Any],
    organism: tuple[VLM, ShiftVectors],
    image: Image.Image,
    method: str,
    operator: str,
) -> None:
    """What the server answers is what `generate_batch` answers for the same prompt and image,
    with every operator."""
    client, _, _ = server
    vlm, shift = organism
    assert shift.axes is not None  # the organism's anchors carry kinds
    steering = (
        None
        if method == "none"
        else Intervention(method, operator=operator, alpha=1.0, shift=shift)  # type: ignore[arg-type]
    )
    prompts, images = [HARMFUL, BENIGN, HARMFUL], [image, image, None]
    expected = generate_batch(vlm, prompts, images, steering, GenerationOptions(max_new_tokens=12))
    for prompt, img, want in zip(prompts, images, expected, strict=True):
        reply = ask(client, user(prompt, img), method=method, operator=operator)
        assert reply.choices[0].message.content == want
        record = reply.model_extra["cmrm"]
        assert record["method"] == method and record["operator"] == operator
        assert record["image"] is (img is not None)
        assert record["shifted"] is (img is not None and method != "none")
        assert record["overridden"] is (method != "dataset" or operator != "add")


def test_the_intervention_changes_the_answer(
    server: tuple[openai.OpenAI, str, Any], image: Image.Image
) -> None:
    """The served default (dataset) and `none` differ on an image request: the shift is live."""
    client, _, _ = server
    steered = ask(client, user(HARMFUL, image), max_tokens=8)
    plain = ask(client, user(HARMFUL, image), max_tokens=8, method="none")
    assert steered.choices[0].message.content != plain.choices[0].message.content


def test_concurrent_mixed_requests_are_isolated(
    server: tuple[openai.OpenAI, str, Any], image: Image.Image
) -> None:
    """Concurrent none/dataset/sample requests, with and without images and with different
    max_tokens, get exactly what each gets alone; and they really were batched."""
    client, _, app = server
    blue = Image.new("RGB", (32, 32), "blue")
    cases = [
        (method, prompt, img, tokens)
        for method in ("none", "dataset", "sample")
        for prompt, img, tokens in ((HARMFUL, image, 12), (BENIGN, blue, 5), (HARMFUL, None, 9))
    ]

    def run(case: tuple[str, str, Image.Image | None, int]) -> tuple[str, str, int]:
        method, prompt, img, tokens = case
        reply = ask(client, user(prompt, img), max_tokens=tokens, method=method)
        choice = reply.choices[0]
        return choice.message.content, choice.finish_reason, reply.usage.completion_tokens

    alone = [run(case) for case in cases]
    vlm = app.state.engine.vlm
    with held_worker(vlm) as (entered, release), ThreadPoolExecutor(len(cases) + 1) as pool:
        blocker = pool.submit(run, ("none", BENIGN, None, 3))
        assert entered.wait(30)
        before = app.state.engine.stats()
        futures = [pool.submit(run, case) for case in cases]
        deadline = time.monotonic() + 30
        while app.state.engine.stats()["waiting"] < len(cases) and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
        together = [f.result() for f in futures]
        blocker.result()
    after = app.state.engine.stats()
    assert together == alone
    assert after["batched_requests"] - before["batched_requests"] == len(cases) + 1
    # the blocker's batch, then one batch per method: sample-level rows share a batch too
    assert after["batches"] - before["batches"] == 1 + 3
    assert any(tokens == 5 and reason == "length" for (_, reason, tokens) in together)


def test_streaming_matches_the_plain_answer(
    server: tuple[openai.OpenAI, str, Any], image: Image.Image
) -> None:
    client, _, _ = server
    plain = ask(client, user(HARMFUL, image), max_tokens=10)
    stream = client.chat.completions.create(
        model="organism",
        messages=user(HARMFUL, image),
        temperature=0,
        max_tokens=10,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage, records = [], None, None, []
    for chunk in stream:
        records.append(chunk.model_extra["cmrm"])
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == plain.choices[0].message.content
    assert len([p for p in pieces if p]) > 1, "the answer came in one piece, not streamed"
    assert finish == plain.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == plain.usage.completion_tokens
    assert all(r["method"] == "dataset" for r in records)


def test_stop_strings_and_logprobs(
    server: tuple[openai.OpenAI, str, Any], image: Image.Image
) -> None:
    client, _, _ = server
    full = ask(client, user(BENIGN, image), max_tokens=12).choices[0].message.content
    word = full.split()[2]
    cut = client.chat.completions.create(
        model="organism", messages=user(BENIGN, image), temperature=0, max_tokens=12, stop=[word]
    ).choices[0]
    assert cut.finish_reason == "stop"
    assert cut.message.content == full[: full.index(word)].strip()
    scored = client.chat.completions.create(
        model="organism",
        messages=user(BENIGN, image),
        temperature=0,
        max_tokens=4,
        logprobs=True,
        top_logprobs=3,
    ).choices[0]
    content = scored.logprobs.content
    assert len(content) == 4
    for entry in content:
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].token == entry.token  # greedy picks the most likely
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)
        assert entry.logprob <= 0


def test_multi_turn_conversation_with_a_system_message(
    server: tuple[openai.OpenAI, str, Any], image: Image.Image
) -> None:
    client, _, _ = server
    messages = [
        {"role": "system", "content": "you help"},
        *user(BENIGN, image),
        {"role": "assistant", "content": "it is red ."},
        {"role": "user", "content": "describe the picture"},
    ]
    reply = ask(client, messages, max_tokens=6)
    assert reply.choices[0].message.content
    assert reply.model_extra["cmrm"]["image"] is True


@pytest.mark.parametrize("family", sorted(FAMILY_BUILDERS))
def test_every_family_is_served_with_its_chat_template(family: str, image: Image.Image) -> None:
    """A tiny model of each supported family answers image and text-only requests, concurrently,
    exactly as `generate_batch` does for each alone."""
    model, processor = tiny_vlm(family)
    vlm = from_model(model, processor, model_id=f"tiny-{family}")
    prompts, images = ["what is this", "red blue square"], [image, None]
    expected = [
        generate_batch(vlm, [p], [i], Intervention("sample"), GenerationOptions(max_new_tokens=4))[
            0
        ]
        for p, i in zip(prompts, images, strict=True)
    ]
    config = ServerConfig("tiny", ServedIntervention("sample"))
    with serving(vlm, config) as (client, _, _), ThreadPoolExecutor(2) as pool:

        def one(case: tuple[str, Image.Image | None]) -> str:
            reply = client.chat.completions.create(
                model="tiny", messages=user(*case), temperature=0, max_tokens=4
            )
            return reply.choices[0].message.content

        assert list(pool.map(one, zip(prompts, images, strict=True))) == expected
