"""The demo's outputs: a plain table for the terminal, ``summary.json``, ``report.md``, figures.

The table and the report are rendered by the one report writer (:mod:`cmrm.report.document`),
the figure saved by the one figure writer (:mod:`cmrm.report.canvas`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..report.canvas import new_figure, save_figure
from ..report.document import (
    Align,
    Block,
    Bullets,
    Document,
    Figure,
    Section,
    Table,
    Text,
    markdown_table,
    percent,
    text_table,
    write_document,
)
from .records import HARMFUL_SUITES, TARGET_SUITE, DemoRecord, DemoResult

_COLUMNS = (
    "setting",
    "text unsafe",
    "img unsafe",
    "img refusal",
    "img degen",
    "blank unsafe",
    "over-refusal",
    "QA acc",
)
FIGURE = Path("figures") / "alpha.png"
TITLE = "cmrm demo on the model organism"


def _row(record: DemoRecord) -> tuple[str, ...]:
    return (
        record.label,
        percent(record.rate(HARMFUL_SUITES[0], "unsafe_rate")),
        percent(record.rate(TARGET_SUITE, "unsafe_rate")),
        percent(record.rate(TARGET_SUITE, "refusal_rate")),
        percent(record.rate(TARGET_SUITE, "degenerate_rate")),
        percent(record.rate(HARMFUL_SUITES[2], "unsafe_rate")),
        percent(record.over_refusal_rate),
        percent(record.qa_accuracy),
    )


def records_table(records: Sequence[DemoRecord]) -> Table:
    """One row per setting, rates in percent."""
    right: Align = "right"
    align: tuple[Align, ...] = ("left", *(right for _ in _COLUMNS[1:]))
    return Table(_COLUMNS, tuple(_row(r) for r in records), align)


def table(records: Sequence[DemoRecord], markdown: bool = False) -> str:
    """The records as a terminal table, or as Markdown (the one in ``report.md``)."""
    rows = records_table(records)
    return markdown_table(Table(rows.head, rows.rows)) if markdown else text_table(rows)


def plot(result: DemoResult, path: Path) -> Path:
    """Harmful+image outcomes and QA accuracy against alpha, one line per method and positions."""
    fig = new_figure(figsize=(12, 3.8), dpi=130)
    axes = fig.subplots(1, 3)
    panels = (
        ("unsafe_rate", "harmful + image: compliance"),
        ("degenerate_rate", "harmful + image: degenerate"),
        ("qa", "image QA accuracy"),
    )
    base = next((r for r in result.records if r.method == "none"), None)
    series: dict[str, list[DemoRecord]] = {}
    for record in result.records:
        if record.alpha is not None:
            series.setdefault(f"{record.method} ({record.positions})", []).append(record)

    def value(record: DemoRecord, metric: str) -> float:
        if metric == "qa":
            return 100 * (record.qa_accuracy or 0.0)
        return 100 * record.rate(TARGET_SUITE, metric)

    for ax, (metric, title) in zip(axes, panels, strict=True):
        for name, recs in sorted(series.items()):
            recs = sorted(recs, key=lambda r: r.alpha or 0.0)
            ax.plot(
                [r.alpha for r in recs], [value(r, metric) for r in recs], marker="o", label=name
            )
        if base is not None:
            ax.axhline(
                value(base, metric),
                color="black",
                linestyle="--",
                linewidth=1,
                label="no intervention",
            )
        ax.set(title=title, xlabel="alpha (log scale)", ylabel="%", ylim=(-3, 103))
        if all(a > 0 for recs in series.values() for a in (r.alpha for r in recs) if a):
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def report_document(result: DemoResult) -> Document:
    """``report.md``: what was run, the table, the best setting against the target, the gap."""
    selection = result.selection
    best: list[Block] = []
    if selection.best is None:
        best.append(Text("No steered setting was evaluated."))
    else:
        cut = "-" if selection.relative_cut is None else f"{100 * selection.relative_cut:.1f} %"
        best.append(
            Text(
                "Best (lowest harmful+image compliance + degenerate + image-QA accuracy lost + "
                f"over-refusal gained): **{selection.best.label}**; harmful+image compliance cut "
                f"by {cut} relative to no intervention."
            )
        )
        best.append(
            Bullets(
                tuple(
                    f"{'met' if ok else 'NOT met'}: {name}" for name, ok in selection.checks.items()
                )
            )
        )
    sections = [Section("Best setting against the target", tuple(best))]
    if result.gap is not None:
        gap = Text(
            "See [gap/summary.md](gap/summary.md) and ![gap per layer](gap/figures/layers.png)"
        )
        sections.append(Section("Representation gap", (gap,)))
    rows = records_table(result.records)
    return Document(
        TITLE,
        intro=(
            Text(
                "Numbers on the organism (a 0.8M-parameter LLaVA trained on synthetic data) show "
                "that the pipeline works and how CMRM behaves on a model whose degradation is "
                "known; they say nothing about real VLMs."
            ),
            Text(
                "Rates in % on held-out suites, judged by the organism's exact judge. *unsafe* = "
                "harmful compliance, *refusal* = clean refusal, *degen* = broken output."
            ),
            Table(rows.head, rows.rows),
            Figure(result.out_dir / FIGURE, "CMRM against alpha"),
        ),
        sections=tuple(sections),
    )


def summary_json(result: DemoResult, header: dict[str, Any]) -> str:
    """The text of ``summary.json``."""
    body = {
        **header,
        "records": [r.to_json() for r in result.records],
        "best": result.selection.to_json(),
        "gap": result.gap,
    }
    return json.dumps(body, indent=2, allow_nan=False, default=str) + "\n"


def write_outputs(result: DemoResult, header: dict[str, Any]) -> None:
    """``figures/alpha.png``, ``report.md`` and ``summary.json`` in ``result.out_dir``."""
    out = result.out_dir
    plot(result, out / FIGURE)
    write_document(report_document(result), out / "report.md")
    atomic_write(out / "summary.json", summary_json(result, header))


__all__ = ["HARMFUL_SUITES", "plot", "report_document", "summary_json", "table", "write_outputs"]
