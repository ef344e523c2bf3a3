"""Judges turn (item, completion) pairs into Judgments: refusal, safety, correctness, scores."""

from .backends import ChatBackend, JudgeBackendError
from .degenerate import is_degenerate
from .hf_backend import HFBackend
from .judgment import Judge, Judgment
from .mc import extract_choice
from .openai_backend import OpenAIBackend
from .prompts import VERDICT_TEMPLATE, parse_guard, parse_verdict
from .reference import parse_correctness, parse_pair, relative_score
from .refusal import REFUSAL_PHRASES, find_refusal
from .registry import get_judge, list_judges

__all__ = [
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
