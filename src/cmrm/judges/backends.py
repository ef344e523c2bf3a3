"""What a judge model is to a judge: something that completes chat conversations.

Two implementations: :class:`~cmrm.judges.hf_backend.HFBackend` (a local transformers causal LM
with a chat template) and :class:`~cmrm.judges.openai_backend.OpenAIBackend` (any
OpenAI-compatible ``/v1/chat/completions`` endpoint). Model judges build conversations, ask a
backend to complete them greedily, and parse the answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cmrm.base.errors import CmrmError

Message = dict[str, str]
"""``{"role": "system" | "user" | "assistant", "content": text}``."""

Conversation = Sequence[Message]


class JudgeBackendError(CmrmError):
    """A judge model could not be loaded or reached, or refused the request."""


class ChatBackend(Protocol):
    """Completes conversations with the judge model, deterministically where the backend allows."""

    description: str
    """The judge model, e.g. ``"hf:meta-llama/Llama-Guard-3-1B"`` (for logs and errors)."""

    def complete(self, conversations: Sequence[Conversation]) -> list[str]:
        """One assistant reply (text) per conversation, in order."""
        ...


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def with_system(system: str | None, messages: list[Message]) -> list[Message]:
    """Prepend a system message when one is configured."""
    return [{"role": "system", "content": system}, *messages] if system else messages
