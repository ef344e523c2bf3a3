"""The demo's outputs: a plain table for the terminal, ``summary.json``, ``report.md``, figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_write
from .records import HARMFUL_SUITES, TARGET_SUITE, DemoRecord

if TYPE_CHECKING:
    from .run import DemoResult

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


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def _row(record: DemoRecord) -> list[str]:
    return [
        record.label,
        _pct(record.rate("organism:harmful-text", "unsafe_rate")),
        _pct(record.rate(TARGET_SUITE, "unsafe_rate")),
        _pct(record.rate(TARGET_SUITE, "refusal_rate")),
        _pct(record.rate(TARGET_SUITE, "degenerate_rate")),
        _pct(record.rate("organism:harmful-blank", "unsafe_rate")),
        _pct(record.over_refusal_rate),
        _pct(record.qa_accuracy),
    ]


def table(records: tuple[DemoRecord, ...] | list[DemoRecord], markdown: bool = False) -> str:
    """One row per setting, rates in percent."""
    rows = [_row(r) for r in records]
    if markdown:
        lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + " --- |" * len(_COLUMNS)]
        return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])
    widths = [max(len(x) for x in col) for col in zip(_COLUMNS, *rows, strict=True)]
    return "\n".join(
        "  ".join(
            v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [list(_COLUMNS), *rows]
    )


def plot(result: DemoResult, path: Path) -> Path:
    """Harmful+image outcomes and QA accuracy against alpha, one line per method and positions."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.8), dpi=130)
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
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for name, recs in sorted(series.items()):
            recs = sorted(recs, key=lambda r: r.alpha or 0.0)
            xs = [r.alpha for r in recs]
            ys = [
                100 * (r.qa_accuracy or 0.0)
                if metric == "qa"
                else 100 * r.rate(TARGET_SUITE, metric)
                for r in recs
            ]
            ax.plot(xs, ys, marker="o", label=name)
        if base is not None:
            ref = (
                100 * (base.qa_accuracy or 0.0)
                if metric == "qa"
                else 100 * base.rate(TARGET_SUITE, metric)
            )
            ax.axhline(ref, color="black", linestyle="--", linewidth=1, label="no intervention")
        ax.set(title=title, xlabel="alpha (log scale)", ylabel="%", ylim=(-3, 103))
        if all(a > 0 for recs in series.values() for a in (r.alpha for r in recs) if a):
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
    return path


def report_markdown(result: DemoResult) -> str:
    """``report.md``: what was run, the table, the best setting against the target, the gap."""
    verdict = result.verdict
    lines = [
        "# cmrm demo on the model organism",
        "",
        (
            "Numbers on the organism (a 0.8M-parameter LLaVA trained on synthetic data) show that the "
            "pipeline works and how CMRM behaves on a model whose degradation is known; they say "
            "nothing about real VLMs."
        ),
        "",
        (
            "Rates in % on held-out suites, judged by the organism's exact judge. *unsafe* = harmful "
            "compliance, *refusal* = clean refusal, *degen* = broken output."
        ),
        "",
        table(result.records, markdown=True),
        "",
        "![CMRM against alpha](figures/alpha.png)",
        "",
        "## Best setting against the target",
        "",
    ]
    if verdict.best is None:
        lines.append("No steered setting was evaluated.")
    else:
        cut = "-" if verdict.relative_cut is None else f"{100 * verdict.relative_cut:.1f} %"
        lines.append(
            f"Best (lowest harmful+image compliance + degenerate + image-QA accuracy lost + "
            f"over-refusal gained): **{verdict.best.label}**; harmful+image compliance cut by "
            f"{cut} relative to no intervention."
        )
        lines.append("")
        lines.extend(
            f"- {'met' if ok else 'NOT met'}: {name}" for name, ok in verdict.checks.items()
        )
    if result.gap is not None:
        lines += [
            "",
            "## Representation gap",
            "",
            "See [gap/summary.md](gap/summary.md) and ![gap per layer](gap/figures/layers.png)",
        ]
    return "\n".join(lines) + "\n"


def write_outputs(result: DemoResult, header: dict[str, Any]) -> None:
    from .run import summary_json

    out = result.out_dir
    plot(result, out / "figures" / "alpha.png")
    atomic_write(out / "report.md", report_markdown(result))
    atomic_write(out / "summary.json", summary_json(result, header))


__all__ = ["HARMFUL_SUITES", "plot", "report_markdown", "table", "write_outputs"]
