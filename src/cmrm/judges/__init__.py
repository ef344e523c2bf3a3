"""Judges turn (item, completion) pairs into Judgments: refusal, safety, correctness, scores.

Imported lazily: ``get_judge``/``list_judges`` and the registry import no backend (and no torch)
until a judge that needs one is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base.lazy import attach

if TYPE_CHECKING:
    from .backends import ChatBackend as ChatBackend
    from .backends import JudgeBackendError as JudgeBackendError
    from .degenerate import is_degenerate as is_degenerate
    from .hf_backend import HFBackend as HFBackend
    from .judgment import Judge as Judge
    from .judgment import Judgment as Judgment
    from .mc import extract_choice as extract_choice
    from .openai_backend import OpenAIBackend as OpenAIBackend
    from .prompts import VERDICT_TEMPLATE as VERDICT_TEMPLATE
    from .prompts import parse_guard as parse_guard
    from .prompts import parse_verdict as parse_verdict
    from .reference import parse_correctness as parse_correctness
    from .reference import parse_pair as parse_pair
    from .reference import relative_score as relative_score
    from .refusal import REFUSAL_PHRASES as REFUSAL_PHRASES
    from .refusal import find_refusal as find_refusal
    from .registry import JUDGES as JUDGES
    from .registry import get_judge as get_judge
    from .registry import list_judges as list_judges

_EXPORTS = {
    "ChatBackend": ".backends",
    "JudgeBackendError": ".backends",
    "is_degenerate": ".degenerate",
    "HFBackend": ".hf_backend",
    "Judge": ".judgment",
    "Judgment": ".judgment",
    "extract_choice": ".mc",
    "OpenAIBackend": ".openai_backend",
    "VERDICT_TEMPLATE": ".prompts",
    "parse_guard": ".prompts",
    "parse_verdict": ".prompts",
    "parse_correctness": ".reference",
    "parse_pair": ".reference",
    "relative_score": ".reference",
    "REFUSAL_PHRASES": ".refusal",
    "find_refusal": ".refusal",
    "JUDGES": ".registry",
    "get_judge": ".registry",
    "list_judges": ".registry",
}

__all__ = [
    "JUDGES",
    "REFUSAL_PHRASES",
    "VERDICT_TEMPLATE",
    "ChatBackend",
    "HFBackend",
    "Judge",
    "JudgeBackendError",
    "Judgment",
    "OpenAIBackend",
    "extract_choice",
    "find_refusal",
    "get_judge",
    "is_degenerate",
    "list_judges",
    "parse_correctness",
    "parse_guard",
    "parse_pair",
    "parse_verdict",
    "relative_score",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, _EXPORTS, globals())
