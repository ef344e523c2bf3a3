"""Figures of a run: metrics against alpha per benchmark, and the safety-utility trade-off.

Steered methods (``dataset``, ``sample``) are lines over alpha with 95 % bootstrap error bars;
alpha-free methods (``none``, ``text-only``) are horizontal reference lines with a shaded interval.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..evaluation.metrics import CellSummary, Estimate, Summary
from .canvas import new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PLOTTED = ("unsafe_rate", "over_refusal_rate", "accuracy", "score")
LABELS = {
    "unsafe_rate": "unsafe rate",
    "refusal_rate": "refusal rate",
    "over_refusal_rate": "over-refusal rate (benign refused)",
    "accuracy": "accuracy",
    "score": "score",
    "degenerate_rate": "degenerate-output rate",
}
COLOURS = {
    "none": "tab:red",
    "text-only": "tab:green",
    "dataset": "tab:blue",
    "sample": "tab:purple",
}
UTILITY = ("accuracy", "score")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v")
"""One line style and marker per operator of a run (colour: the method)."""


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "x"


def _has(cells: Sequence[CellSummary], metric: str) -> bool:
    return any(c.metrics[metric].value is not None for c in cells)


def _errors(estimates: Sequence[Estimate]) -> list[list[float]]:
    lows = [e.value - e.low for e in estimates if e.value is not None and e.low is not None]
    highs = [e.high - e.value for e in estimates if e.value is not None and e.high is not None]
    return [lows, highs]


def line_of(cell: CellSummary) -> tuple[str, str | None]:
    """The line a cell belongs to: (method, operator); steered cells of two operators are two
    lines, never one zig-zag over alpha. Baselines have no operator."""
    return (cell.cell.method, None if cell.cell.alpha is None else cell.cell.operator)


def line_label(line: tuple[str, str | None], operators: Sequence[str]) -> str:
    """``dataset`` for the paper's operator alone, ``dataset/project`` as soon as the run has
    another operator (or only another one)."""
    method, operator = line
    if operator is None or (operator == "add" and list(operators) in ([], ["add"])):
        return method
    return f"{method}/{operator}"


def _operators(cells: Sequence[CellSummary]) -> list[str]:
    return list(dict.fromkeys(op for _, op in map(line_of, cells) if op is not None))


def _panel(ax: Axes, cells: Sequence[CellSummary], metric: str, alphas: Sequence[float]) -> None:
    span = (min(alphas, default=0.0), max(alphas, default=1.0))
    operators = _operators(cells)
    for line in dict.fromkeys(map(line_of, cells)):
        mine = [c for c in cells if line_of(c) == line and c.metrics[metric].value is not None]
        if not mine:
            continue
        method, operator = line
        colour = COLOURS.get(method)
        label = line_label(line, operators)
        if mine[0].cell.alpha is None:
            e = mine[0].metrics[metric]
            assert e.value is not None and e.low is not None and e.high is not None
            ax.axhline(e.value, color=colour, linestyle="--", label=label)
            ax.axhspan(e.low, e.high, color=colour, alpha=0.12)
            continue
        style = LINESTYLES[operators.index(operator) % len(LINESTYLES)] if operator else "-"
        marker = MARKERS[operators.index(operator) % len(MARKERS)] if operator else "o"
        mine.sort(key=lambda c: c.cell.alpha or 0.0)
        estimates = [c.metrics[metric] for c in mine]
        ax.errorbar(
            [c.cell.alpha or 0.0 for c in mine],
            [e.value or 0.0 for e in estimates],
            yerr=_errors(estimates),
            marker=marker,
            linestyle=style,
            capsize=3,
            color=colour,
            label=label,
        )
    ax.set_xlabel("alpha")
    ax.set_ylabel(LABELS[metric])
    ax.set_xlim(span[0] - 0.1, span[1] + 0.1)
    if metric != "score":
        ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_benchmark(summary: Summary, benchmark: str, path: Path) -> Path | None:
    """Metrics of one benchmark against alpha, one panel per measured metric; None if none."""
    cells = [c for c in summary.cells if c.cell.benchmark == benchmark]
    metrics = [m for m in PLOTTED if _has(cells, m)]
    if not metrics:
        return None
    alphas = sorted({c.cell.alpha for c in cells if c.cell.alpha is not None})
    fig = new_figure(figsize=(4.6 * len(metrics), 3.6))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        _panel(ax, cells, metric, alphas)
        ax.set_title(f"{benchmark}: {LABELS[metric]}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def _pooled(cells: Sequence[CellSummary], metrics: Sequence[str]) -> tuple[float, Estimate | None]:
    """Mean over benchmarks of the first measured metric; the Estimate when only one measured."""
    found = []
    for c in cells:
        e = next((c.metrics[m] for m in metrics if c.metrics[m].value is not None), None)
        if e is not None:
            found.append(e)
    if not found:
        return float("nan"), None
    mean = sum(e.value or 0.0 for e in found) / len(found)
    return mean, found[0] if len(found) == 1 else None


def plot_tradeoff(summary: Summary, path: Path) -> Path | None:
    """Unsafe rate (x) against utility (y), one point per (method, alpha), pooled over
    benchmarks (error bars when a single benchmark measures the axis); None without both."""
    groups: dict[tuple[tuple[str, str | None], float | None], list[CellSummary]] = {}
    for c in summary.cells:
        groups.setdefault((line_of(c), c.cell.alpha), []).append(c)
    operators = _operators(summary.cells)
    points = []
    for (line, alpha), cells in groups.items():
        x, ex = _pooled(cells, ("unsafe_rate",))
        y, ey = _pooled(cells, UTILITY)
        if not (math.isnan(x) or math.isnan(y)):
            points.append((line, alpha, x, ex, y, ey))
    if not points:
        return None
    fig = new_figure(figsize=(6, 4.4))
    ax = fig.subplots()
    seen: set[str] = set()
    for line, alpha, x, ex, y, ey in points:
        label = line_label(line, operators)
        operator = line[1]
        ax.errorbar(
            x,
            y,
            xerr=None if ex is None else _errors([ex]),
            yerr=None if ey is None else _errors([ey]),
            marker=MARKERS[operators.index(operator) % len(MARKERS)] if operator else "o",
            capsize=3,
            color=COLOURS.get(line[0]),
            label=None if label in seen else label,
        )
        seen.add(label)
        if alpha is not None:
            ax.annotate(
                f"α={alpha:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
    ax.set_xlabel("unsafe rate (lower is safer)")
    ax.set_ylabel("utility (accuracy or score; higher is better)")
    ax.set_title("Safety-utility trade-off")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
