"""The request body of ``POST /v1/chat/completions`` (OpenAI's chat format, the parts cmrm reads).

Fields cmrm does not use (``user``, ``metadata``, ...) are ignored; fields whose non-default value
would change the answer in a way cmrm cannot honour (``n > 1``, tools, penalties, ...) are refused
by :func:`check_supported` rather than silently dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import APIError, bad_request


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str
    detail: str | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None
    image_url: ImageURL | str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """A chat completion request."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    cmrm: dict[str, Any] | None = None


_UNSUPPORTED: dict[str, Any] = {
    "tools": None,
    "tool_choice": None,
    "functions": None,
    "function_call": None,
    "logit_bias": None,
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "audio": None,
    "prediction": None,
}


def parse_request(data: Any) -> ChatRequest:
    """Validate a decoded JSON body.

    Raises:
        APIError: 400 naming the first invalid field.
    """
    if not isinstance(data, dict):
        raise bad_request(f"the body must be a JSON object, got {type(data).__name__}")
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise bad_request(
            f"invalid field {where!r}: {first['msg']} (got {_short(first.get('input'))})",
            param=where,
        ) from err
    check_supported(request)
    return request


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_supported(request: ChatRequest) -> None:
    """Refuse what cmrm serve cannot honour (400, naming the field)."""
    extra = request.model_extra or {}
    for name, neutral in _UNSUPPORTED.items():
        if name in extra and extra[name] not in (None, neutral, [], {}):
            raise bad_request(f"{name!r} is not supported by cmrm serve; remove it", param=name)
    if request.n not in (None, 1):
        raise bad_request(f"n must be 1 (cmrm serve returns one choice), got {request.n}", "n")
    response_format = extra.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise bad_request(
            "response_format other than text is not supported by cmrm serve", "response_format"
        )
    if request.logprobs and request.stream:
        raise bad_request(
            "logprobs are returned only without streaming by cmrm serve; set stream to false",
            param="logprobs",
        )
    if request.top_logprobs is not None and not 0 <= request.top_logprobs <= 20:
        raise bad_request(
            f"top_logprobs must be between 0 and 20, got {request.top_logprobs}", "top_logprobs"
        )
    if request.top_logprobs and not request.logprobs:
        raise bad_request("top_logprobs needs logprobs: true", param="top_logprobs")
    if request.temperature is not None and not 0 <= request.temperature <= 2:
        raise bad_request(
            f"temperature must be between 0 and 2, got {request.temperature}", "temperature"
        )
    if request.top_p is not None and not 0 < request.top_p <= 1:
        raise bad_request(f"top_p must be in (0, 1], got {request.top_p}", "top_p")
    stops = [request.stop] if isinstance(request.stop, str) else request.stop or []
    if len(stops) > 4 or any(not s for s in stops):
        raise bad_request("stop takes at most 4 non-empty strings", param="stop")


def requested_tokens(request: ChatRequest) -> int | None:
    """``max_completion_tokens`` (the current name) or ``max_tokens``; checked positive."""
    value = request.max_completion_tokens
    name = "max_completion_tokens"
    if value is None:
        value, name = request.max_tokens, "max_tokens"
    if value is not None and value <= 0:
        raise bad_request(f"{name} must be at least 1, got {value}", param=name)
    return value


def stop_strings(request: ChatRequest) -> tuple[str, ...]:
    if request.stop is None:
        return ()
    return (request.stop,) if isinstance(request.stop, str) else tuple(request.stop)


FinishReason = Literal["stop", "length"]


def too_large(limit: int) -> APIError:
    return APIError(
        413,
        f"the request body is larger than this server's limit of {limit} bytes; "
        "send smaller images (or ask the operator to raise --max-body-bytes)",
        code="request_too_large",
    )
