"""Any OpenAI-compatible chat endpoint (hosted OpenAI, vLLM, llama.cpp server ...) as a backend."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from cmrm.base.errors import ConfigError

from .backends import Conversation, JudgeBackendError

log = logging.getLogger(__name__)


def _require_openai() -> Any:
    try:
        import openai
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "the openai judge backend needs the 'openai' package; install it with "
            "`pip install 'cmrm[openai]'`"
        ) from err
    return openai


class OpenAIBackend:
    """Greedy (temperature 0) chat completions through the official ``openai`` client.

    Transient failures (HTTP 429, 5xx, timeouts, dropped connections) are retried ``max_retries``
    times with exponential backoff (``backoff``, ``2*backoff``, ...). Authentication, permission,
    unknown-model and bad-request errors fail at once with a message that says what to fix.

    Args:
        model: the served model name (e.g. ``"gpt-4o-mini"`` or the name vLLM serves).
        base_url: the API root, e.g. ``"http://localhost:8000/v1"``; ``None``: OpenAI's.
        api_key: the key; ``None`` reads ``OPENAI_API_KEY``. Local servers accept any string.
        max_tokens: reply length limit.
        max_retries: retries after the first attempt, for transient errors only.
        backoff: seconds before the first retry; doubled each time.
        timeout: seconds per request.
        show_progress: show a tqdm bar over conversations.
        client: an already-built ``openai.OpenAI`` client (``base_url``/``api_key`` then unused).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int = 32,
        max_retries: int = 4,
        backoff: float = 1.0,
        timeout: float = 60.0,
        show_progress: bool = False,
        client: Any = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigError(
                f"openai backend: model must be the served model's name, got {model!r}; "
                "e.g. model='gpt-4o-mini' or the name your vLLM server serves"
            )
        if max_retries < 0 or backoff < 0 or max_tokens < 1:
            raise ConfigError(
                "openai backend: max_retries and backoff must be >= 0 and max_tokens >= 1, got "
                f"{max_retries}, {backoff}, {max_tokens}"
            )
        openai = _require_openai()
        self._errors = openai
        if client is None:
            key = api_key or os.environ.get("OPENAI_API_KEY")
            if not key:
                raise ConfigError(
                    "openai backend: no API key; pass api_key=... or set OPENAI_API_KEY "
                    "(a local vLLM server accepts any string, e.g. 'EMPTY')"
                )
            client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=timeout)
        self.client = client
        self.model = model
        self.base_url = str(getattr(client, "base_url", base_url))
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.backoff = backoff
        self.show_progress = show_progress
        self.sleep: Callable[[float], None] = time.sleep
        self.description = f"openai:{model}@{self.base_url}"

    def complete(self, conversations: Sequence[Conversation]) -> list[str]:
        iterator = tqdm(conversations, desc=self.description, disable=not self.show_progress)
        return [self._complete_one(list(c)) for c in iterator]

    def _request(self, messages: list[dict[str, str]]) -> str:
        response = self.client.chat.completions.create(
            model=self.model, messages=messages, max_tokens=self.max_tokens, temperature=0.0
        )
        if not response.choices:
            return ""
        return str(response.choices[0].message.content or "").strip()

    def _complete_one(self, messages: list[dict[str, str]]) -> str:
        openai = self._errors
        transient = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)
        for attempt in range(self.max_retries + 1):
            try:
                return self._request(messages)
            except transient as err:
                if attempt == self.max_retries:
                    raise self._fatal(err, attempts=attempt + 1) from err
                delay = self.backoff * 2**attempt
                log.warning("%s: %s; retry %d in %.2fs", self.description, err, attempt + 1, delay)
                self.sleep(delay)
            except openai.APIStatusError as err:
                raise self._fatal(err, attempts=attempt + 1) from err
        raise AssertionError("unreachable")  # pragma: no cover

    def _fatal(self, err: Exception, *, attempts: int) -> JudgeBackendError:
        openai = self._errors
        where = f"judge endpoint {self.base_url} (model {self.model!r})"
        if isinstance(err, openai.AuthenticationError | openai.PermissionDeniedError):
            fix = "check api_key / OPENAI_API_KEY and that the key may use this model"
            return JudgeBackendError(f"{where} rejected the credentials ({err}); {fix}")
        if isinstance(err, openai.NotFoundError):
            return JudgeBackendError(
                f"{where} answered 404 ({err}); check the model name and that base_url ends in /v1"
            )
        if isinstance(err, openai.APIConnectionError):
            return JudgeBackendError(
                f"could not connect to {where} after {attempts} attempt(s) ({err}); check that "
                "the server is running and base_url is right"
            )
        status = getattr(err, "status_code", "?")
        return JudgeBackendError(
            f"{where} failed with HTTP {status} after {attempts} attempt(s): {err}"
        )
