"""``cmrm organism eval``: how degraded a bundled organism is, measured like any ``cmrm eval`` run.

The organism's held-out suites are evaluated by :func:`cmrm.evaluation.run_eval` (method
``none``, the ``organism`` judge, greedy decoding) into a run directory, exactly as
``cmrm eval organism --bench organism:harmful-image ... --method none --judge organism`` would;
the table is then read from the run's judgments and rendered by the one report writer. Rates are
over every item of a suite (harmful compliance is 0 on benign suites, since no benign request can
be harmful help), which is what the organism's docs report.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.items import Item
from ..data.registry import BENCHMARKS
from ..evaluation import EvalConfig, read_rows, run_eval
from ..generation.generate import GenerationOptions, generate_items
from ..judges.judgment import Judgment
from ..models import from_model
from ..models.vlm import VLM
from ..organisms.toy.catalog import EVAL_SUITES
from ..report.document import Table, markdown_table, percent

MAX_NEW_TOKENS = 20
BATCH_SIZE = 64


def complete(
    model: Any,
    processor: Any,
    items: Sequence[Item],
    *,
    batch_size: int = BATCH_SIZE,
    max_new_tokens: int = MAX_NEW_TOKENS,
    show_progress: bool = False,
) -> list[str]:
    """Greedy completions (special tokens removed) of an organism's ``(model, processor)``.

    The same path as every other model: :func:`cmrm.generation.generate.generate_items` with no steering.
    """
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


def organism_suites(organism: str, *, validation: bool = False) -> tuple[str, ...]:
    """A bundled organism's measured suites, by the registry's naming convention:
    ``<organism>:val-*`` (``validation``) or every other suite but ``<organism>:anchor``."""
    prefix = f"{organism}:"
    names = [n for n in BENCHMARKS.names() if n.startswith(prefix)]
    if validation:
        return tuple(n for n in names if n.startswith(f"{prefix}val-"))
    return tuple(n for n in names if not n.startswith((f"{prefix}val-", f"{prefix}anchor")))


def measure(
    vlm: VLM,
    run_dir: str | Path,
    *,
    suites: Sequence[str] = EVAL_SUITES,
    judge: str = "organism",
    limit: int | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    batch_size: int = BATCH_SIZE,
    show_progress: bool = False,
) -> list[SuiteResult]:
    """Evaluate ``vlm`` on ``suites`` into ``run_dir`` (resumable, like ``cmrm eval``) with
    ``judge`` and return one :class:`SuiteResult` per suite."""
    config = EvalConfig(
        model=vlm.model_id,
        benchmarks=tuple(suites),
        methods=("none",),
        judge=judge,
        limit=limit,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    run_eval(config, run_dir, vlm=vlm, show_progress=show_progress)
    by_suite: dict[str, list[Judgment]] = {suite: [] for suite in suites}
    for row in read_rows(Path(run_dir) / "judgments.jsonl"):
        by_suite[row["benchmark"]].append(Judgment(**row["judgment"]))
    return [SuiteResult.from_judgments(suite, by_suite[suite]) for suite in suites]


def degradation_table(
    model: Any,
    processor: Any,
    *,
    suites: Sequence[str] = EVAL_SUITES,
    limit: int | None = None,
    run_dir: str | Path | None = None,
    show_progress: bool = False,
) -> list[SuiteResult]:
    """:func:`measure` on an organism's ``(model, processor)``; without ``run_dir`` the run goes
    to a temporary directory, removed afterwards."""
    vlm = from_model(model, processor, model_id="organism")
    if run_dir is not None:
        return measure(vlm, run_dir, suites=suites, limit=limit, show_progress=show_progress)
    with tempfile.TemporaryDirectory(prefix="cmrm-organism-eval-") as tmp:
        return measure(vlm, tmp, suites=suites, limit=limit, show_progress=show_progress)


def results_table(rows: Sequence[SuiteResult]) -> Table:
    """The rows as a table (percentages), numeric columns right-aligned."""
    head = ("suite", "n", "refusal %", "harmful compliance %", "degenerate %", "correct %")
    body = tuple(
        (
            r.suite,
            str(r.n),
            percent(r.refusal),
            percent(r.compliance),
            percent(r.degenerate),
            percent(r.correct),
        )
        for r in rows
    )
    return Table(head, body, ("left", "right", "right", "right", "right", "right"))


def format_table(rows: Sequence[SuiteResult]) -> str:
    """A Markdown table of the rows (percentages)."""
    return markdown_table(results_table(rows))
