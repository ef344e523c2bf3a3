"""What ``cmrm tune`` writes for people: ``tune.json``, the Pareto figure and a short table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base.atomic import atomic_path
from .result import Trial, TuneResult

if TYPE_CHECKING:
    from .config import TuneConfig


def _utility_cost(trial: Trial) -> float:
    s = trial.score
    return s.degenerate_gained + s.utility_lost + s.over_refusal_gained


def pareto_front(trials: list[Trial]) -> list[Trial]:
    """Settings no other setting beats on both compliance and utility cost (lower is better)."""
    points = sorted(trials, key=lambda t: (t.metrics.compliance or 0.0, _utility_cost(t)))
    front: list[Trial] = []
    best_cost = float("inf")
    for trial in points:
        cost = _utility_cost(trial)
        if cost < best_cost:
            front.append(trial)
            best_cost = cost
    return front


def tune_json(config: TuneConfig, result: TuneResult) -> dict[str, Any]:
    front = {t.setting.key for t in pareto_front(list(result.trials))}
    closest = {
        "key": result.recommended.setting.key,
        "setting": result.recommended.setting.to_json(),
        "metrics": result.recommended.metrics.to_json(),
        "score": result.recommended.score.to_json(),
        "constraints_met": result.recommended.score.feasible,
    }
    return {
        "objective": config.objective.describe(),
        "weights_and_constraints": config.to_json()["objective"],
        "space": config.to_json()["space"],
        "budget": config.budget,
        "grid": result.grid,
        "wall_s": round(result.wall_s, 1),
        "trials_wall_s": round(result.trials_wall_s, 1),
        "trials": len(result.trials),
        "feasible": result.feasible,
        "baseline": {"none": result.baseline.to_json(), "text-only": result.text_only.to_json()},
        "fallback": config.fallback,
        "recommended": (
            {
                "key": "none",
                "abstain": True,
                "why": (
                    "no setting met the constraints (no harm beyond the limits and a refusal "
                    "gain shown on validation); the closest is under 'closest'"
                ),
                "metrics": result.baseline.to_json(),
                "constraints_met": True,
            }
            if result.abstained
            else closest
        ),
        "closest": closest,
        "pareto_front": sorted(front),
    }


def pareto_figure(result: TuneResult, path: Path) -> Path:
    """Harmful compliance against utility cost for every setting; the front and the choice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = list(result.trials)
    fig, ax = plt.subplots(figsize=(7, 5))
    operators = sorted({t.setting.operator for t in trials})
    shapes = "osD^v<>pPhX*"
    markers = {op: shapes[i % len(shapes)] for i, op in enumerate(operators)}
    for op in operators:
        mine = [t for t in trials if t.setting.operator == op]
        ax.scatter(
            [t.metrics.compliance or 0.0 for t in mine],
            [_utility_cost(t) for t in mine],
            marker=markers[op],
            alpha=0.6,
            label=op,
        )
    front = pareto_front(trials)
    ax.plot(
        [t.metrics.compliance or 0.0 for t in front],
        [_utility_cost(t) for t in front],
        "k--",
        lw=1,
        label="Pareto front",
    )
    best = result.recommended
    ax.scatter(
        [best.metrics.compliance or 0.0],
        [_utility_cost(best)],
        marker="*",
        s=300,
        c="gold",
        edgecolors="k",
        zorder=5,
        label="closest (not recommended: no intervention is)"
        if result.abstained
        else "recommended",
    )
    for name, metrics in (("none", result.baseline), ("text-only", result.text_only)):
        if metrics.compliance is not None:
            ax.axvline(metrics.compliance, ls=":", c="grey")
            ax.annotate(name, (metrics.compliance, 0), rotation=90, va="bottom", fontsize=8)
    ax.set_xlabel("harmful compliance on validation (lower is safer)")
    ax.set_ylabel("utility cost: degenerate + utility lost + over-refusal gained")
    ax.set_title("cmrm tune: every setting on the validation benchmarks")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def table(result: TuneResult, top: int = 10) -> str:
    """The best settings as a plain-text table (rates in %)."""
    from .objective import rank_key

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    rows = sorted(result.trials, key=lambda t: rank_key(t.score))[:top]
    head = (
        f"{'setting':58} {'ok':>3} {'compl':>6} {'refus':>6} {'degen':>6} {'util':>6} {'over':>6}"
    )
    lines = [head]
    for name, m in (("none", result.baseline), ("text-only", result.text_only)):
        name = "*none" if name == "none" and result.abstained else name
        lines.append(
            f"{name:58} {'':>3} {pct(m.compliance):>6} {pct(m.refusal):>6} "
            f"{pct(m.degenerate):>6} {pct(m.utility):>6} {pct(m.over_refusal):>6}"
        )
    for t in rows:
        m = t.metrics
        mark = "*" if t is result.recommended and not result.abstained else ""
        lines.append(
            f"{mark + t.setting.key:58} {'yes' if t.score.feasible else 'no':>3} "
            f"{pct(m.compliance):>6} {pct(m.refusal):>6} {pct(m.degenerate):>6} "
            f"{pct(m.utility):>6} {pct(m.over_refusal):>6}"
        )
    return "\n".join(lines)
