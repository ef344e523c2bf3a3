"""Response bodies in OpenAI's chat-completion format, each with a ``cmrm`` field."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .batch import RowResult, TokenLogprob


@dataclass(frozen=True)
class Envelope:
    """What every body and chunk of one request shares."""

    model: str
    cmrm: dict[str, Any]
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def _logprob_entry(item: TokenLogprob) -> dict[str, Any]:
    return {
        "token": item.token,
        "logprob": item.logprob,
        "bytes": list(item.token.encode("utf-8")),
        "top_logprobs": [
            {"token": token, "logprob": value, "bytes": list(token.encode("utf-8"))}
            for token, value in item.top
        ],
    }


def usage(result: RowResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def finish_reason(result: RowResult) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def completion(env: Envelope, result: RowResult) -> dict[str, Any]:
    logprobs = (
        {"content": [_logprob_entry(item) for item in result.logprobs]}
        if result.logprobs is not None
        else None
    )
    return {
        "id": env.id,
        "object": "chat.completion",
        "created": env.created,
        "model": env.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": finish_reason(result),
                "logprobs": logprobs,
            }
        ],
        "usage": usage(result),
        "cmrm": env.cmrm,
    }


def chunk(
    env: Envelope,
    delta: dict[str, Any] | None,
    finish: str | None = None,
    result: RowResult | None = None,
) -> str:
    """One server-sent event; ``delta=None`` makes the final usage-only chunk."""
    body: dict[str, Any] = {
        "id": env.id,
        "object": "chat.completion.chunk",
        "created": env.created,
        "model": env.model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        "cmrm": env.cmrm,
    }
    if result is not None:
        body["usage"] = usage(result)
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def error_event(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body)}\n\n"


DONE = "data: [DONE]\n\n"


def model_card(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "cmrm"}
