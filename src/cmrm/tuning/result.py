"""The values ``cmrm tune`` produces: a finished trial and the whole result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .objective import Score, TrialMetrics
from .space import Setting


@dataclass(frozen=True)
class Trial:
    """A finished setting: its validation metrics and score."""

    setting: Setting
    metrics: TrialMetrics
    score: Score
    wall_s: float | None = None
    """Wall time of the trial's evaluation (None in rows written before it was recorded)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "cell": "tune",
            "id": self.setting.key,
            "setting": self.setting.to_json(),
            "metrics": self.metrics.to_json(),
            "score": self.score.to_json(),
            "wall_s": None if self.wall_s is None else round(self.wall_s, 2),
        }

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Trial:
        return cls(
            Setting.from_json(row["setting"]),
            TrialMetrics.from_json(row["metrics"]),
            Score(**row["score"]),
            row.get("wall_s"),
        )


@dataclass(frozen=True)
class TuneResult:
    """What the search found."""

    recommended: Trial
    """The best trial: feasible first, by objective; else the closest infeasible one."""
    trials: tuple[Trial, ...]
    baseline: TrialMetrics
    text_only: TrialMetrics
    out_dir: Path
    grid: int = 0
    """Settings in the grid (after ``--budget``; early-stopped ones included)."""
    wall_s: float = 0.0
    """Wall time of this invocation (a resumed run counts only its own part)."""
    abstained: bool = False
    """No setting met the constraints and the fallback is ``none``: the recommendation is no
    intervention (``recommended`` is then only the closest setting, reported beside it)."""

    @property
    def recommended_key(self) -> str:
        """``none`` when the tune abstained, else the recommended setting's key."""
        return "none" if self.abstained else self.recommended.setting.key

    @property
    def trials_wall_s(self) -> float:
        """Summed wall time of the trials that recorded theirs (over every invocation)."""
        return sum(t.wall_s or 0.0 for t in self.trials)

    @property
    def feasible(self) -> int:
        return sum(t.score.feasible for t in self.trials)
