"""The configuration of ``cmrm tune`` (everything that decides its result)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..base.errors import ConfigError
from ..evaluation.config import EvalConfig
from .objective import Objective
from .space import TuneSpace


@dataclass(frozen=True)
class TuneConfig:
    """Everything that decides the result of ``cmrm tune``."""

    model: str = "organism"
    anchors: str = ""
    val: tuple[str, ...] = ()
    space: TuneSpace = field(default_factory=TuneSpace)
    objective: Objective = field(default_factory=Objective)
    null: str = "blank"
    limit: int | None = None
    """Validation items per benchmark."""
    anchor_limit: int | None = None
    max_new_tokens: int = 64
    batch_size: int = 8
    budget: int | None = None
    """At most this many settings (breadth-first by alpha; see :mod:`cmrm.tuning.space`)."""
    early_stop: float = 0.25
    """Skip a group's larger alphas once a setting's degenerate output grows by this much."""
    fallback: str = "none"
    """When no setting meets the constraints: ``none`` recommends no intervention (alpha 0; the
    closest setting is reported beside it), ``closest`` recommends the closest setting anyway."""
    seed: int = 0
    judge: str | None = None
    judges: Mapping[str, str] = field(default_factory=dict)
    judge_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    root: str | None = None
    roots: Mapping[str, str] = field(default_factory=dict)
    bench_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    dtype: str | None = None
    device: str | None = None
    layers_path: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if not self.anchors:
            raise ConfigError("tune needs --anchors BENCH (the calibration set)")
        if not self.val:
            raise ConfigError(
                "tune needs at least one --val BENCH: validation benchmarks, disjoint from the "
                "anchors and from every set you will evaluate on"
            )
        if len(set(self.val)) != len(self.val) or self.anchors in self.val:
            raise ConfigError(
                f"validation benchmarks must be distinct and not the anchors; got {list(self.val)}"
            )
        for name, value in (("limit", self.limit), ("budget", self.budget)):
            if value is not None and value < 1:
                raise ConfigError(f"tune: {name} must be at least 1, got {value}")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ConfigError("tune: batch size and max new tokens must be at least 1")
        if self.fallback not in FALLBACKS:
            raise ConfigError(
                f"tune: fallback must be one of {', '.join(FALLBACKS)}, got {self.fallback!r} "
                "(none: recommend no intervention when no setting meets the constraints; "
                "closest: recommend the closest setting anyway)"
            )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("judges", "judge_options", "roots", "bench_options"):
            out[key] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in out[key].items()}
        return out

    def eval_config(self, **fields: Any) -> EvalConfig:
        """An ordinary eval configuration over the validation benchmarks."""
        return EvalConfig(
            model=self.model,
            benchmarks=self.val,
            null=self.null,
            judge=self.judge,
            judges=dict(self.judges),
            judge_options={k: dict(v) for k, v in self.judge_options.items()},
            root=self.root,
            roots=dict(self.roots),
            bench_options={k: dict(v) for k, v in self.bench_options.items()},
            limit=self.limit,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
            dtype=self.dtype,
            layers_path=self.layers_path,
            trust_remote_code=self.trust_remote_code,
            batch_size=self.batch_size,
            device=self.device,
            **fields,
        )


RUNTIME = ("batch_size", "device", "budget", "fallback", "objective")
"""Keys that may change on resume (a larger budget continues the same search; the fallback and
the objective only change how the finished trials are scored and which is recommended)."""

FALLBACKS = ("none", "closest")
