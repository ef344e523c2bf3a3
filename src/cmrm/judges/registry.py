"""Judges by name: ``get_judge("refusal")``, ``get_judge("llamaguard", model=...)``, ...

:data:`JUDGES` is a :class:`cmrm.base.registry.Registry` of factories: each name maps to a lazily
imported function (or class) whose keyword arguments are the judge's options, so importing this
module imports neither torch nor a backend. Unknown names and unknown options fail with a
did-you-mean message. A new judge is one line::

    JUDGES.register("name", "package.module:factory", description="...")
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cmrm.base.errors import ConfigError
from cmrm.base.registry import Registry

if TYPE_CHECKING:
    from .judgment import Judge

JudgeFactory = Callable[..., "Judge"]
"""``factory(**options) -> Judge``."""


JUDGES: Registry[JudgeFactory] = Registry("judge", callables=True)
JUDGES.register(
    "refusal",
    "cmrm.judges.factories:refusal_judge",
    description="refusal-phrase matching (offline; attack success rate)",
)
JUDGES.register(
    "llamaguard",
    "cmrm.judges.factories:llamaguard_judge",
    description="Llama Guard 3 safety classifier (transformers)",
)
JUDGES.register(
    "llm",
    "cmrm.judges.factories:llm_judge",
    description="an HF instruct model prompted for a safe/unsafe verdict",
)
JUDGES.register(
    "openai",
    "cmrm.judges.factories:openai_judge",
    description="safe/unsafe verdict from an OpenAI-compatible endpoint",
)
JUDGES.register(
    "mc",
    "cmrm.judges.factories:mc_judge",
    description="multiple-choice answer extraction and correctness (ScienceQA)",
)
JUDGES.register(
    "reference",
    "cmrm.judges.factories:reference_judge",
    description="judge-model scoring against references (LLaVA-Bench, MM-Vet)",
)
JUDGES.register(
    "organism",
    "cmrm.organisms.toy.judge:OrganismJudge",
    description="the model organism's exact, grammar-aware judge (organism suites; no options)",
)
JUDGES.register(
    "organism-smol",
    "cmrm.organisms.smol.judge:SmolJudge",
    description="the SmolLM2 organism's judge: refusal keywords, degenerate output, exact image "
    "answers (organism-smol suites; no options)",
)


def _accepted(factory: Callable[..., Any]) -> list[str]:
    params = inspect.signature(factory).parameters.values()
    return [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def check_options(owner: str, options: Mapping[str, Any], *factories: Callable[..., Any]) -> None:
    """Raise ConfigError for an option none of ``factories`` accepts (with a did-you-mean)."""
    known = [name for f in factories for name in _accepted(f)]
    if options and not known:
        raise ConfigError(f"judge {owner!r} takes no options, got {sorted(options)}")
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"judge {owner!r}: unknown option {key!r}.{hint} Accepted: {', '.join(known)}."
            )


def get_judge(name: str, **options: Any) -> Judge:
    """Build the judge registered as ``name`` with its options (see ``docs/judges.md``).

    Raises:
        UnknownNameError: no judge is called ``name`` (with a did-you-mean suggestion).
        ConfigError: an option the judge does not take, or a bad value.
    """
    factory = JUDGES.get(name)
    has_extra = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())
    if not has_extra:
        check_options(name, options, factory)
    return factory(**options)


def check_judge(name: str) -> None:
    """Raise UnknownNameError (with a did-you-mean) unless ``name`` is a registered judge;
    imports nothing, so it can run before any expensive work."""
    JUDGES.entry(name)


def list_judges() -> list[tuple[str, str]]:
    """(name, description) of every registered judge, in registry order."""
    return [(entry.name, entry.description) for entry in JUDGES.entries()]
