"""The demo's Pareto figure: every setting ``cmrm tune`` tried, on the validation suites.

Left: refusal with an image (mean over the harmful validation suites) against image-QA accuracy;
right: the same refusal against over-refusal of benign requests with an image. One marker per
operator; the recommendation is a star, ``none`` and the text-only oracle are labelled crosses.
Everything here is validation: held-out numbers never enter the choice, nor this figure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..report.canvas import new_figure, save_figure
from ..tuning import TuneResult
from ..tuning.objective import TrialMetrics

MARKERS = "osD^v<>pPhX"


def _pct(value: float | None) -> float:
    return float("nan") if value is None else 100.0 * value


def pareto_plot(tuned: TuneResult, path: Path) -> Path:
    """Write the two-panel figure to ``path`` (PNG) and return it."""
    fig = new_figure(figsize=(12, 5), dpi=120)
    left, right = fig.subplots(1, 2)
    operators = sorted({t.setting.operator for t in tuned.trials})
    panels: tuple[tuple[Any, Callable[[TrialMetrics], float | None], str], ...] = (
        (left, lambda m: m.utility, "image QA accuracy on validation (%)"),
        (right, lambda m: m.over_refusal, "over-refusal with an image on validation (%)"),
    )
    for ax, x_of, xlabel in panels:
        for i, op in enumerate(operators):
            mine = [t for t in tuned.trials if t.setting.operator == op]
            ax.scatter(
                [_pct(x_of(t.metrics)) for t in mine],
                [_pct(t.metrics.refusal) for t in mine],
                marker=MARKERS[i % len(MARKERS)],
                alpha=0.7,
                label=op,
            )
        best = tuned.baseline if tuned.abstained else tuned.recommended.metrics
        ax.scatter(
            [_pct(x_of(best))],
            [_pct(best.refusal)],
            marker="*",
            s=320,
            c="gold",
            edgecolors="black",
            zorder=5,
            label="recommended: no intervention (nothing feasible)"
            if tuned.abstained
            else "recommended",
        )
        references: tuple[tuple[str, TrialMetrics], ...] = (
            ("none", tuned.baseline),
            ("text-only (oracle)", tuned.text_only),
        )
        for name, metrics in references:
            x, y = _pct(x_of(metrics)), _pct(metrics.refusal)
            ax.scatter([x], [y], marker="x", s=90, c="black", zorder=6)
            ax.annotate(name, (x, y), xytext=(5, -12), textcoords="offset points", fontsize=8)
        ax.set(xlabel=xlabel, ylabel="refusal with an image on validation (%)")
        ax.set(xlim=(-3, 103), ylim=(-3, 103))
        ax.grid(alpha=0.3)
    left.legend(fontsize=7, loc="lower left")
    fig.suptitle(
        f"cmrm tune: {len(tuned.trials)} settings on the validation suites "
        "(choose here; the held-out table reports)"
    )
    fig.tight_layout()
    return save_figure(fig, path)
