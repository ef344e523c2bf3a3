"""The OpenAI-compatible FastAPI application: ``GET /health``, ``GET /v1/models``,
``POST /v1/chat/completions`` (with and without ``stream``).

Each request is checked before it reaches the model (body size, JSON, fields, model name, messages,
intervention policy, image, token budget) and refused with a 4xx in OpenAI's error schema; the
server keeps serving. Accepted requests go through the :class:`~cmrm.serve.engine.Engine`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..generation.generate import GenerationOptions
from ..models.vlm import VLM
from . import responses
from .batch import Row, RowResult
from .config import ServerConfig
from .conversation import chat_view, has_chat_template, parse_messages
from .engine import Engine, Job, stream_to
from .errors import APIError, bad_request
from .images import load_request_image
from .intervention import describe, resolve
from .schema import ChatRequest, parse_request, requested_tokens, stop_strings, too_large

logger = logging.getLogger(__name__)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _decode_json(body: bytes) -> Any:
    if not body:
        raise bad_request("the request has no body; send a JSON chat completion request")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise bad_request(f"the body is not valid JSON: {err}", code="invalid_json") from err


def _sampling(request: ChatRequest) -> GenerationOptions:
    temperature = request.temperature or 0.0
    if temperature == 0:
        return GenerationOptions()
    return GenerationOptions(
        do_sample=True,
        temperature=temperature,
        top_p=request.top_p if request.top_p is not None else 1.0,
        seed=request.seed or 0,
    )


def create_app(vlm: VLM, config: ServerConfig) -> FastAPI:
    """The server application for ``vlm`` (a :class:`~cmrm.models.VLM`) under ``config``."""
    chat = chat_view(vlm)
    engine = Engine(chat, config.intervention, config.limits)
    limits, started = config.limits, int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.start()
        yield
        await run_in_threadpool(engine.stop)

    app = FastAPI(title="cmrm serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine = engine

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {err.detail}"
        return JSONResponse(APIError(err.status_code, message).body(), err.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        failure = APIError(500, f"internal server error ({type(err).__name__}); see the server log")
        return JSONResponse(failure.body(), status_code=500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": config.model_name, **engine.stats()}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [responses.model_card(config.model_name, started)]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        with engine.preparing():
            req, job, envelope = await _accept(request)
        if job.deltas is not None:
            usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(
                _events(job, job.deltas, envelope, limits.request_timeout_s, usage),
                media_type="text/event-stream",
            )
        result = await _wait(job, limits.request_timeout_s)
        return JSONResponse(responses.completion(envelope, result))

    async def _accept(request: Request) -> tuple[ChatRequest, Job, responses.Envelope]:
        """Read and check a request, then queue it (every refusal happens here)."""
        body = await _read_body(request, limits.max_body_bytes)
        req = parse_request(_decode_json(body))
        if req.model != config.model_name:
            raise APIError(
                404,
                f"model {req.model!r} is not served here; this server serves "
                f"{config.model_name!r} (GET /v1/models)",
                param="model",
                code="model_not_found",
            )
        conversation = parse_messages(req.messages, chat_template=has_chat_template(chat))
        choice, overridden = resolve(req.cmrm, config.intervention, config.policy)
        asked = _asked(req)
        image = None
        if conversation.image_url is not None:
            image = await load_request_image(
                conversation.image_url, config.images, limits.max_body_bytes
            )
        prompt_tokens = await run_in_threadpool(engine.count_tokens, conversation.prompt, image)
        max_tokens = _budget(asked, prompt_tokens)
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        deltas: asyncio.Queue[str] | None = asyncio.Queue() if req.stream else None
        row = Row(
            prompt=conversation.prompt,
            image=image,
            max_tokens=max_tokens,
            stop=stop_strings(req),
            top_logprobs=(req.top_logprobs or 0) if req.logprobs else None,
            on_delta=stream_to(loop, deltas) if deltas is not None else None,
            cancelled=cancel.is_set,
        )
        job = Job(row, choice, _sampling(req), loop, loop.create_future(), deltas, cancel)
        envelope = responses.Envelope(
            model=config.model_name,
            cmrm=describe(
                choice, config.intervention, has_image=image is not None, overridden=overridden
            ),
        )
        engine.submit(job)
        return req, job, envelope

    def _asked(req: ChatRequest) -> int | None:
        asked = requested_tokens(req)
        if asked is not None and asked > limits.max_new_tokens:
            raise bad_request(
                f"max_tokens {asked} is more than this server's limit of "
                f"{limits.max_new_tokens}; ask for fewer",
                param="max_tokens",
            )
        return asked

    def _budget(asked: int | None, prompt_tokens: int) -> int:
        context = engine.context_length
        room = context - prompt_tokens if context else limits.max_new_tokens
        if room < 1 or (asked is not None and asked > room):
            raise bad_request(
                f"the prompt has {prompt_tokens} tokens (image tokens included) and asks for "
                f"{asked if asked is not None else 'at least 1'} more, but the model's context "
                f"is {context} tokens; shorten the conversation or ask for fewer tokens",
                param="messages",
                code="context_length_exceeded",
            )
        return asked if asked is not None else min(limits.max_new_tokens, room)

    return app


def _timeout(seconds: float) -> APIError:
    return APIError(
        504,
        f"the request did not finish within this server's timeout of {seconds:g} s; "
        "ask for fewer tokens or retry later",
        code="timeout",
    )


async def _wait(job: Job, timeout: float) -> RowResult:
    try:
        return await asyncio.wait_for(asyncio.shield(job.future), timeout)
    except TimeoutError as err:
        job.cancel.set()
        job.future.cancel()
        raise _timeout(timeout) from err
    except asyncio.CancelledError:
        job.cancel.set()
        raise


async def _events(
    job: Job, deltas: asyncio.Queue[str], env: responses.Envelope, timeout: float, usage: bool
) -> AsyncIterator[str]:
    deadline = time.monotonic() + timeout
    try:
        yield responses.chunk(env, {"role": "assistant", "content": ""})
        while not (job.future.done() and deltas.empty()):
            getter: asyncio.Future[Any] = asyncio.ensure_future(deltas.get())
            waiting: set[asyncio.Future[Any]] = {getter, job.future}
            done, _ = await asyncio.wait(
                waiting,
                timeout=max(0.0, deadline - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if getter in done:
                yield responses.chunk(env, {"content": getter.result()})
                continue
            getter.cancel()
            if not done:
                job.future.cancel()
                raise _timeout(timeout)
        result = job.future.result()
        yield responses.chunk(env, {}, responses.finish_reason(result))
        if usage:
            yield responses.chunk(env, None, result=result)
    except APIError as err:
        job.cancel.set()
        yield responses.error_event(err.body())
    except asyncio.CancelledError:
        job.cancel.set()
        raise
    yield responses.DONE
