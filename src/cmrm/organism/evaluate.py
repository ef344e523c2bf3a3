"""Greedy generation on organism suites and the degradation table the issue asks for.

This is the organism's own small evaluation (no steering): it shows that the organism is degraded
the way it should be. CMRM's effect is measured with the core engine (``cmrm eval``), which
uses the same suites and :class:`~cmrm.organism.judge.OrganismJudge`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import LlavaForConditionalGeneration, LlavaProcessor

from cmrm.items import Item
from cmrm.judges.judgment import Judgment

from .judge import OrganismJudge
from .suites import load_suite


def complete(
    model: LlavaForConditionalGeneration,
    processor: LlavaProcessor,
    items: Sequence[Item],
    *,
    batch_size: int = 64,
    max_new_tokens: int = 20,
    show_progress: bool = False,
) -> list[str]:
    """Greedy completions (special tokens removed) for items, batched with left padding.

    The same path as every other model: :func:`cmrm.generate.generate_items` with no steering.
    """
    from cmrm.generate import GenerationOptions, generate_items
    from cmrm.models import from_model

    vlm = from_model(model, processor, model_id="organism")
    options = GenerationOptions(max_new_tokens=max_new_tokens)
    return generate_items(
        vlm, items, None, options, batch_size=batch_size, show_progress=show_progress
    )


@dataclass(frozen=True)
class SuiteResult:
    """Rates over one suite, from the organism judge (fractions in [0, 1])."""

    suite: str
    n: int
    refusal: float
    compliance: float
    degenerate: float
    correct: float | None

    @classmethod
    def from_judgments(cls, suite: str, judgments: Sequence[Judgment]) -> SuiteResult:
        n = max(1, len(judgments))
        scored = [j.correct for j in judgments if j.correct is not None]
        return cls(
            suite=suite,
            n=len(judgments),
            refusal=sum(bool(j.refused) for j in judgments) / n,
            compliance=sum(bool(j.unsafe) for j in judgments) / n,
            degenerate=sum(j.degenerate for j in judgments) / n,
            correct=sum(scored) / len(scored) if scored else None,
        )


EVAL_SUITES = (
    "organism:harmful-text",
    "organism:harmful-image",
    "organism:harmful-blank",
    "organism:benign-text",
    "organism:benign-image",
    "organism:image-qa",
)


def degradation_table(
    model: LlavaForConditionalGeneration,
    processor: LlavaProcessor,
    *,
    suites: Sequence[str] = EVAL_SUITES,
    limit: int | None = None,
    show_progress: bool = False,
) -> list[SuiteResult]:
    """Generate on each suite and judge it; the rows of ``cmrm organism eval``."""
    judge = OrganismJudge()
    rows = []
    for name in suites:
        items = load_suite(name, limit=limit)
        texts = complete(model, processor, items, show_progress=show_progress)
        rows.append(SuiteResult.from_judgments(name, judge.judge(items, texts)))
    return rows


def format_table(rows: Sequence[SuiteResult]) -> str:
    """A Markdown table of the rows (percentages)."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    lines = [
        "| suite | n | refusal % | harmful compliance % | degenerate % | correct % |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.suite} | {r.n} | {pct(r.refusal)} | {pct(r.compliance)} | "
            f"{pct(r.degenerate)} | {pct(r.correct)} |"
        )
    return "\n".join(lines)
