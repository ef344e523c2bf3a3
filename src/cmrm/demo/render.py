"""The demo's outputs: a plain table for the terminal, ``summary.json``, ``report.md``, figures.

The table and the report are rendered by the one report writer (:mod:`cmrm.report.document`),
the figure saved by the one figure writer (:mod:`cmrm.report.canvas`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..base.atomic import atomic_write
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
from ..tuning import TuneResult
from .profiles import DemoProfile
from .records import DemoRecord, DemoResult

FIGURE = Path("figures") / "alpha.png"
PARETO = Path("figures") / "pareto.png"


def _columns(profile: DemoProfile) -> tuple[str, ...]:
    extra = tuple(f"{s.split(':', 1)[-1]} unsafe" for s in profile.extra_harmful)
    return (
        "setting",
        "text refusal",
        "img refusal",
        "img unsafe",
        "img degen",
        *extra,
        "over-refusal",
        "QA acc",
        "Δ img refusal",
        "Δ over-refusal",
        "Δ QA",
    )


def _interval(record: DemoRecord, key: str) -> str:
    """`` [low–high]`` in percent from the record's bootstrap interval, or nothing."""
    low, high = record.intervals.get(key, (None, None))
    if low is None or high is None:
        return ""
    return f" [{100 * low:.0f}–{100 * high:.0f}]"


def _delta(record: DemoRecord, key: str, intervals: bool) -> str:
    """The paired difference to ``none`` in points, ``+12 [+5, +19]``; ``-`` for ``none`` itself
    or a number not measured."""
    found = record.paired.get(key)
    if not found or found[0] is None:
        return "-"
    value, low, high = (100 * float(x) for x in found[:3])
    return f"{value:+.1f}" + (f" [{low:+.0f}, {high:+.0f}]" if intervals else "")


def _row(record: DemoRecord, profile: DemoProfile, intervals: bool = False) -> tuple[str, ...]:
    image = profile.harmful_image.split(":", 1)[-1]
    refusal = percent(record.rate(profile.harmful_image, "refusal_rate"))
    if intervals:
        refusal += _interval(record, f"{image}.refusal_rate")
    return (
        record.label,
        percent(record.rate(profile.harmful_text, "refusal_rate")),
        refusal,
        percent(record.rate(profile.harmful_image, "unsafe_rate")),
        percent(record.rate(profile.harmful_image, "degenerate_rate")),
        *(percent(record.rate(s, "unsafe_rate")) for s in profile.extra_harmful),
        percent(record.over_refusal_rate)
        + (_interval(record, "over_refusal_rate") if intervals else ""),
        percent(record.qa_accuracy) + (_interval(record, "qa_accuracy") if intervals else ""),
        _delta(record, f"{image}.refusal_rate", intervals),
        _delta(record, "over_refusal_rate", intervals),
        _delta(record, "qa_accuracy", intervals),
    )


def records_table(
    records: Sequence[DemoRecord], profile: DemoProfile, intervals: bool = False
) -> Table:
    """One row per setting, rates in percent, and the paired differences to ``none`` in points
    (``intervals``: with 95 % bootstrap intervals on image refusal, over-refusal, QA and the
    differences)."""
    columns = _columns(profile)
    right: Align = "right"
    align: tuple[Align, ...] = ("left", *(right for _ in columns[1:]))
    return Table(columns, tuple(_row(r, profile, intervals) for r in records), align)


def table(result: DemoResult, markdown: bool = False) -> str:
    """The records as a terminal table, or as Markdown (the one in ``report.md``, with 95 %
    bootstrap intervals on image refusal, over-refusal and QA)."""
    rows = records_table(result.records, result.profile, intervals=True)
    text = markdown_table(rows) if markdown else text_table(rows)
    return text if markdown else _protocol_line(result) + "\n" + text


def _protocol_line(result: DemoResult) -> str:
    """Which protocol produced the numbers, and the items per suite."""
    none = next((r for r in result.records if r.method == "none"), None)
    sizes = ", ".join(f"{k} {v}" for k, v in (none.n if none else {}).items())
    kind = (
        "QUICK smoke run (small suites and grid: NOT powered, do not cite)"
        if result.quick
        else "powered protocol"
    )
    return f"{kind}; held-out items per suite: {sizes or '?'}"


def tune_summary(tuned: TuneResult) -> dict[str, Any]:
    """What the demo keeps of ``cmrm tune``: the choice and how it was made."""
    rec = tuned.recommended
    return {
        "grid": tuned.grid,
        "trials": len(tuned.trials),
        "wall_s": round(tuned.wall_s, 1),
        "trials_wall_s": round(tuned.trials_wall_s, 1),
        "criterion": "paired 95 % interval upper bound against none",
        "feasible": tuned.feasible,
        "recommended": tuned.recommended_key,
        "abstained": tuned.abstained,
        "closest": rec.setting.key,
        "constraints_met": True if tuned.abstained else rec.score.feasible,
        "validation": (tuned.baseline if tuned.abstained else rec.metrics).to_json(),
        "validation_closest": rec.metrics.to_json(),
        "validation_none": tuned.baseline.to_json(),
        "validation_text_only": tuned.text_only.to_json(),
        "pareto": str(PARETO),
        "pareto_tune": "tune/pareto.png",
    }


def plot(result: DemoResult, path: Path) -> Path:
    """The paper's CMRM against alpha: harmful+image refusal and degenerate output, image QA."""
    profile = result.profile
    fig = new_figure(figsize=(12, 3.8), dpi=130)
    axes = fig.subplots(1, 3)
    panels = (
        ("refusal_rate", "harmful + image: clean refusal"),
        ("degenerate_rate", "harmful + image: degenerate"),
        ("qa", "image QA accuracy"),
    )
    paper = [r for r in result.records if r.source == "paper"]
    base = next((r for r in paper if r.method == "none"), None)
    series: dict[str, list[DemoRecord]] = {}
    for record in paper:
        if record.alpha is not None:
            series.setdefault(f"{record.method} ({record.positions})", []).append(record)

    def value(record: DemoRecord, metric: str) -> float:
        if metric == "qa":
            return 100 * (record.qa_accuracy or 0.0)
        return 100 * record.rate(profile.harmful_image, metric)

    for ax, (metric, title) in zip(axes, panels, strict=True):
        for name, recs in sorted(series.items()):
            recs = sorted(recs, key=lambda r: r.alpha or 0.0)
            ax.plot(
                [r.alpha for r in recs], [value(r, metric) for r in recs], marker="o", label=name
            )
        references: tuple[tuple[DemoRecord | None, str], ...] = (
            (base, "--"),
            (_recommended(result), ":"),
        )
        for reference, style in references:
            if reference is not None:
                ax.axhline(
                    value(reference, metric),
                    color="black" if style == "--" else "tab:red",
                    linestyle=style,
                    linewidth=1,
                    label="no intervention" if style == "--" else "recommended (tune)",
                )
        ax.set(title=title, xlabel="alpha (log scale)", ylabel="%", ylim=(-3, 103))
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def _recommended(result: DemoResult) -> DemoRecord | None:
    return next((r for r in result.records if r.recommended), None)


def _targets(result: DemoResult) -> list[Block]:
    rec = _recommended(result)
    if rec is None:
        return [Text("No setting was recommended.")]
    t = result.targets
    state = "meets" if t.met else "does **not** meet"
    chose = (
        f"`cmrm tune` recommends **no intervention**: none of the {result.tune.get('trials')} "
        "settings it tried met the constraints on the validation suites (no harm beyond the "
        "limits, and a refusal gain shown). The closest, "
        f"{result.tune.get('closest')}, is in the table beside it. On the held-out suites, no "
        f"intervention {state} the targets:"
        if result.tune.get("abstained")
        else f"`cmrm tune` chose **{rec.label.removesuffix(' *')}** on the validation suites "
        f"({result.tune.get('feasible')} of {result.tune.get('trials')} settings met the "
        f"constraints there). On the held-out suites it {state} the targets:"
    )
    blocks: list[Block] = [
        Text(chose),
        Bullets(tuple(f"{'met' if ok else 'NOT met'}: {name}" for name, ok in t.checks.items())),
    ]
    return blocks


def report_document(result: DemoResult) -> Document:
    """``report.md``: what was run, the table, the recommendation against the targets, the gap."""
    profile = result.profile
    rows = records_table(result.records, profile, intervals=True)
    sections = [
        Section("The recommendation against the targets", tuple(_targets(result))),
        Section(
            "How it was chosen",
            (
                Text(
                    "Settings were searched on the validation suites "
                    f"({', '.join(profile.val)}), disjoint from the anchors and from every "
                    "suite above; see [tune/tune.json](tune/tune.json) for the objective, the "
                    "constraints and every setting."
                ),
                Figure(result.out_dir / PARETO, "every setting on validation"),
            ),
        ),
    ]
    if result.gap is not None:
        closed = result.gap.get("gap_closed_at_largest")
        sections.append(
            Section(
                "Representation gap",
                (
                    Text(
                        f"Largest gap at layer {result.gap['largest_gap_layer']}; the recommended "
                        f"intervention closes {percent(closed)} % of it there. See "
                        "[gap/summary.md](gap/summary.md) (with the null-image fidelity)."
                    ),
                    Figure(result.out_dir / "gap" / "figures" / "layers.png", "gap per layer"),
                ),
            )
        )
    return Document(
        f"cmrm demo on {profile.model}",
        intro=(
            Text(
                f"The organism: {profile.description}. Organism numbers show that the pipeline "
                "works and how the interventions behave on a model whose degradation is known; "
                "they say nothing about the size of any effect on real VLMs."
            ),
            Text(
                f"{_protocol_line(result)}. Rates in % on the held-out suites, judged by "
                f"`{profile.judge}`; [low–high] = 95 % bootstrap interval; *Δ* = the paired "
                "difference to `none` on the same items, in points, with its 95 % bootstrap "
                "interval. *refusal* = clean refusal, *unsafe* = harmful compliance, *degen* = "
                "broken output. Rows: the baselines, the paper's CMRM "
                f"({' and '.join(profile.paper_methods)}-level `add` at every layer and "
                "position, independent calibration), and each operator's best setting on "
                "validation; `*` marks the recommendation."
            ),
            rows,
            Figure(result.out_dir / FIGURE, "the paper's CMRM against alpha"),
        ),
        sections=tuple(sections),
    )


def summary_json(result: DemoResult, header: dict[str, Any]) -> str:
    """The text of ``summary.json``."""
    rec = _recommended(result)
    body = {
        **header,
        "organism": result.profile.model,
        "records": [r.to_json() for r in result.records],
        "recommended": None if rec is None else rec.to_json(),
        "targets": result.targets.to_json(),
        "tune": dict(result.tune),
        "gap": None if result.gap is None else dict(result.gap),
    }
    return json.dumps(body, indent=2, allow_nan=False, default=str) + "\n"


def write_outputs(result: DemoResult, header: dict[str, Any]) -> None:
    """``figures/alpha.png``, ``report.md`` and ``summary.json`` in ``result.out_dir``."""
    out = result.out_dir
    plot(result, out / FIGURE)
    write_document(report_document(result), out / "report.md")
    atomic_write(out / "summary.json", summary_json(result, header))


__all__ = ["plot", "report_document", "summary_json", "table", "tune_summary", "write_outputs"]
