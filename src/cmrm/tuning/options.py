"""Build a :class:`TuneConfig` from ``cmrm tune``'s command-line strings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..base.errors import ConfigError
from ..evaluation.options import parse_alphas, parse_keyed, parse_options, split_list
from .config import TuneConfig
from .objective import Objective
from .space import TuneSpace

SEQUENTIAL = {"both": (False, True), "on": (True,), "off": (False,)}


def build_tune_config(
    model: str,
    *,
    anchors: str,
    val: Sequence[str],
    operators: str | None = None,
    estimators: str | None = None,
    contrasts: str | None = None,
    sequential: str = "both",
    alphas: str | None = None,
    bands: str | None = None,
    positions: str | None = None,
    sources: str | None = None,
    objective: dict[str, Any] | None = None,
    judges: Sequence[str] = (),
    judge_options: Sequence[str] = (),
    roots: Sequence[str] = (),
    bench_options: Sequence[str] = (),
    **fields: Any,
) -> TuneConfig:
    """The tune configuration; options left None keep the defaults of :class:`TuneSpace`.

    Raises:
        ConfigError: a malformed flag or an invalid configuration.
    """
    if sequential not in SEQUENTIAL:
        raise ConfigError(
            f"--sequential must be one of {', '.join(SEQUENTIAL)}, got {sequential!r}"
        )
    space: dict[str, Any] = {"sequential": SEQUENTIAL[sequential]}
    for key, text in (
        ("operators", operators),
        ("estimators", estimators),
        ("contrasts", contrasts),
        ("bands", bands),
        ("positions", positions),
        ("sources", sources),
    ):
        if text is not None:
            space[key] = split_list(text)
    if alphas is not None:
        space["alphas"] = parse_alphas(alphas)
    judge, per_bench = parse_keyed(judges, "--judge")
    root, per_root = parse_keyed(roots, "--root")
    return TuneConfig(
        model=model,
        anchors=anchors,
        val=tuple(v for spec in val for v in split_list(spec)),
        space=TuneSpace(**space),
        objective=Objective(**(objective or {})),
        judge=judge,
        judges=per_bench,
        judge_options=parse_options(judge_options, "--judge-option"),
        root=root,
        roots=per_root,
        bench_options=parse_options(bench_options, "--bench-option"),
        **{k: v for k, v in fields.items() if v is not None},
    )
