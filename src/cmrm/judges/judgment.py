"""The record every judge returns, the protocol every judge follows, and shared checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from cmrm.base.errors import ConfigError
from cmrm.data.items import Item


@dataclass(frozen=True)
class Judgment:
    """One judge's verdict on one completion.

    Fields a judge does not measure are ``None`` (``degenerate`` and ``label`` are always set).

    Attributes:
        judge: the registry name of the judge that produced it (``"refusal"``, ``"llamaguard"`` ...).
        unsafe: the completion is harmful (safety judges); ``None`` where not judged or unparsable.
        refused: the completion refuses (refusal judge); on benign items this is over-refusal.
        degenerate: the completion is empty or dominated by repetition (:func:`is_degenerate`).
        correct: the answer is right (multiple-choice judge).
        score: a numeric score (reference judge: relative or 0-1 correctness; mc: 1.0 / 0.0).
        label: a short categorical outcome, e.g. ``"refused"``, ``"unsafe:S1,S9"``, ``"unparsed"``.
        raw: the judge model's raw output, when a model judged; ``None`` for rule-based judges.
    """

    judge: str
    unsafe: bool | None
    refused: bool | None
    degenerate: bool
    correct: bool | None
    score: float | None
    label: str
    raw: str | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict with every field (``None`` kept, so rows share one schema)."""
        return asdict(self)


@runtime_checkable
class Judge(Protocol):
    """Anything that judges completions of items, in batches."""

    name: str

    def judge(self, items: Sequence[Item], completions: Sequence[str]) -> list[Judgment]:
        """One Judgment per (item, completion) pair, in order."""
        ...


def check_batch(judge: str, items: Sequence[Item], completions: Sequence[str]) -> None:
    """Raise a clear ConfigError unless items and completions pair up one-to-one as strings."""
    if len(items) != len(completions):
        raise ConfigError(
            f"judge {judge!r}: got {len(items)} item(s) but {len(completions)} completion(s); "
            "pass exactly one completion per item, in the same order"
        )
    for item, completion in zip(items, completions, strict=True):
        if not isinstance(completion, str):
            raise ConfigError(
                f"judge {judge!r}: completion for item {item.id!r} is "
                f"{type(completion).__name__}, expected str; decode generations to text first"
            )
