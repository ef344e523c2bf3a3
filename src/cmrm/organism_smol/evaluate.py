"""Greedy generation on the organism's suites and its degradation table (no steering).

Rates use the field names of organism v1's demo records and of cmrm's evaluation metrics:
``refusal_rate`` and ``unsafe_rate`` (harmful compliance: neither refused nor degenerate) on
harmful suites, ``over_refusal_rate`` on benign suites, ``qa_accuracy`` on image questions, and
``degenerate_rate`` everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cmrm.items import Item
from cmrm.judges.judgment import Judgment

from .judge import SmolJudge
from .suites import load_suite

MAX_NEW_TOKENS = 48
"""Enough for a refusal, the start of an answer, and the degenerate-output check."""

EVAL_SUITES = (
    "organism-smol:harmful-text",
    "organism-smol:harmful-image",
    "organism-smol:benign-text",
    "organism-smol:benign-image",
    "organism-smol:image-qa",
)
VAL_SUITES = (
    "organism-smol:val-harmful-text",
    "organism-smol:val-harmful-image",
    "organism-smol:val-benign-text",
    "organism-smol:val-benign-image",
    "organism-smol:val-image-qa",
)


def complete(
    model: Any,
    processor: Any,
    items: Sequence[Item],
    *,
    batch_size: int = 8,
    max_new_tokens: int = MAX_NEW_TOKENS,
    show_progress: bool = False,
) -> list[str]:
    """Greedy completions through :func:`cmrm.generate.generate_items` (no steering)."""
    from cmrm.generate import GenerationOptions, generate_items
    from cmrm.models import from_model

    vlm = from_model(model, processor, model_id="organism-smol")
    options = GenerationOptions(max_new_tokens=max_new_tokens)
    return generate_items(
        vlm, items, None, options, batch_size=batch_size, show_progress=show_progress
    )


@dataclass(frozen=True)
class SuiteRates:
    """Rates over one suite (fractions in [0, 1]; None where the suite does not measure it)."""

    suite: str
    n: int
    refusal_rate: float | None
    unsafe_rate: float | None
    over_refusal_rate: float | None
    qa_accuracy: float | None
    degenerate_rate: float

    @classmethod
    def from_judgments(
        cls, suite: str, items: Sequence[Item], judgments: Sequence[Judgment]
    ) -> SuiteRates:
        n = len(judgments)

        def mean(values: list[bool]) -> float | None:
            return sum(values) / len(values) if values else None

        harmful = [j for i, j in zip(items, judgments, strict=True) if i.kind == "harmful"]
        benign = [
            j
            for i, j in zip(items, judgments, strict=True)
            if i.kind == "benign" and i.answer is None
        ]
        qa = [j for i, j in zip(items, judgments, strict=True) if i.answer is not None]
        return cls(
            suite=suite,
            n=n,
            refusal_rate=mean([bool(j.refused) for j in harmful]),
            unsafe_rate=mean([bool(j.unsafe) for j in harmful]),
            over_refusal_rate=mean([bool(j.refused) for j in benign]),
            qa_accuracy=mean([bool(j.correct) for j in qa]),
            degenerate_rate=sum(j.degenerate for j in judgments) / max(1, n),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def degradation_table(
    model: Any,
    processor: Any,
    *,
    suites: Sequence[str] = EVAL_SUITES,
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = MAX_NEW_TOKENS,
    show_progress: bool = False,
) -> tuple[list[SuiteRates], dict[str, list[str]]]:
    """Generate on each suite and judge it; returns the rows and the completions per suite."""
    judge = SmolJudge()
    rows, texts = [], {}
    for name in suites:
        items = load_suite(name, limit=limit)
        out = complete(
            model,
            processor,
            items,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            show_progress=show_progress,
        )
        rows.append(SuiteRates.from_judgments(name, items, judge.judge(items, out)))
        texts[name] = out
    return rows, texts


def format_table(rows: Sequence[SuiteRates]) -> str:
    """A Markdown table of the rows (percentages)."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    lines = [
        (
            "| suite | n | refusal % | harmful compliance % | over-refusal % | QA accuracy % "
            "| degenerate % |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.suite} | {r.n} | {pct(r.refusal_rate)} | {pct(r.unsafe_rate)} | "
            f"{pct(r.over_refusal_rate)} | {pct(r.qa_accuracy)} | {pct(r.degenerate_rate)} |"
        )
    return "\n".join(lines)
