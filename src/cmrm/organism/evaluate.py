"""Greedy generation on organism suites and the degradation table the issue asks for.

This is the organism's own small evaluation (no steering): it shows that the organism is degraded
the way it should be. CMRM's effect is measured with the core engine (``cmrm eval``), which
uses the same suites and :class:`~cmrm.organism.judge.OrganismJudge`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from cmrm.items import Item
from cmrm.judges.judgment import Judgment

from .build import chat_prompt
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

    Items with and without an image go to separate batches; the output keeps the input order.
    """
    out: dict[int, str] = {}
    groups = [
        [i for i, it in enumerate(items) if it.image is not None],
        [i for i, it in enumerate(items) if it.image is None],
    ]
    chunks = [g[s : s + batch_size] for g in groups for s in range(0, len(g), batch_size)]
    for chunk in tqdm(chunks, desc="generate", disable=not show_progress, leave=False):
        texts, images = [], []
        for i in chunk:
            image = items[i].image
            if image is not None:
                images.append(image)
            texts.append(chat_prompt(processor, items[i].prompt, image=image is not None))
        batch = processor(text=texts, images=images or None, return_tensors="pt", padding=True).to(
            model.device
        )
        with torch.no_grad():
            ids = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
        decoded = processor.batch_decode(
            ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
        )
        out.update(zip(chunk, (d.strip() for d in decoded), strict=True))
    return [out[i] for i in range(len(items))]


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
