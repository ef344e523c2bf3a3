"""The judge factories behind :data:`cmrm.judges.registry.JUDGES`: each builds one judge from its
options (keyword arguments). Imported only when a judge is built, since it imports torch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from cmrm.base.errors import ConfigError, unknown_name

from .backends import ChatBackend
from .hf_backend import ContentFormat, HFBackend
from .judgment import Judge
from .mc import MultipleChoiceJudge
from .openai_backend import OpenAIBackend
from .prompts import VERDICT_TEMPLATE, parse_guard, parse_verdict
from .reference import Mode, ReferenceJudge
from .refusal import RefusalJudge
from .registry import check_options
from .safety import SafetyJudge, VerdictPrompt, guard_conversation

LLAMA_GUARD_DEFAULT = "meta-llama/Llama-Guard-3-1B"


def hf_backend(
    model: Any = None,
    *,
    tokenizer: Any = None,
    dtype: str | torch.dtype | None = "auto",
    device: str | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    content_format: ContentFormat = "auto",
    show_progress: bool = False,
) -> HFBackend:
    """A hub id / local directory (loaded here) or an already-built model plus its tokenizer."""
    options: dict[str, Any] = {
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "content_format": content_format,
        "show_progress": show_progress,
    }
    if model is None:
        raise ConfigError("a judge model is required: pass model='<hub id or local directory>'")
    if isinstance(model, str):
        if tokenizer is not None:
            raise ConfigError(
                "pass tokenizer= only together with an already-built model, not with a model id "
                f"({model!r}); the tokenizer is loaded from the same id"
            )
        return HFBackend.load(model, dtype=dtype, device=device, **options)
    if tokenizer is None:
        raise ConfigError(
            f"got a built model ({type(model).__name__}) but no tokenizer; pass tokenizer=..."
        )
    if device is not None:
        model.to(device)
    return HFBackend(model, tokenizer, **options)


def refusal_judge(
    *,
    phrases: Sequence[str] | None = None,
    extra_phrases: Sequence[str] = (),
    prefix_chars: int | None = None,
) -> Judge:
    return RefusalJudge(phrases=phrases, extra_phrases=extra_phrases, prefix_chars=prefix_chars)


def llamaguard_judge(
    model: Any = LLAMA_GUARD_DEFAULT, *, max_new_tokens: int = 20, **backend: Any
) -> Judge:
    check_options("llamaguard", backend, hf_backend)
    engine = hf_backend(model, max_new_tokens=max_new_tokens, **backend)
    return SafetyJudge("llamaguard", engine, converse=guard_conversation, parse=parse_guard)


def llm_judge(
    model: Any = None,
    *,
    template: str = VERDICT_TEMPLATE,
    system: str | None = None,
    **backend: Any,
) -> Judge:
    check_options("llm", backend, hf_backend)
    prompt = VerdictPrompt(template, system)
    engine = hf_backend(model, **backend)
    return SafetyJudge("llm", engine, converse=prompt, parse=parse_verdict)


def openai_judge(
    model: str | None = None,
    *,
    template: str = VERDICT_TEMPLATE,
    system: str | None = None,
    **backend: Any,
) -> Judge:
    check_options("openai", backend, OpenAIBackend)
    prompt = VerdictPrompt(template, system)
    engine = OpenAIBackend(model, **backend)  # type: ignore[arg-type]  # None -> clear error
    return SafetyJudge("openai", engine, converse=prompt, parse=parse_verdict)


def mc_judge() -> Judge:
    return MultipleChoiceJudge()


def reference_judge(
    *,
    backend: str = "hf",
    mode: Mode = "llava-bench",
    template: str | None = None,
    system: str | None = None,
    **options: Any,
) -> Judge:
    makers: dict[str, Callable[..., ChatBackend]] = {"hf": hf_backend, "openai": OpenAIBackend}
    if backend not in makers:
        raise unknown_name("reference-judge backend", backend, list(makers))
    check_options(f"reference (backend={backend})", options, makers[backend])
    return ReferenceJudge(makers[backend](**options), mode=mode, template=template, system=system)
