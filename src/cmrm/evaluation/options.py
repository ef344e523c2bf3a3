"""Build an :class:`EvalConfig` from command-line strings (``cmrm eval``'s flags; their
parsing is :mod:`.flags`, re-exported here).

Syntax:
- ``--method none,dataset`` and ``--alpha 0.5,1`` are comma-separated lists;
- ``--judge J`` sets the judge of every benchmark, ``--judge BENCH=J`` one benchmark's;
- ``--root DIR`` / ``--root BENCH=DIR`` likewise for data roots;
- ``--judge-option JUDGE.KEY=VALUE`` and ``--bench-option BENCH.KEY=VALUE`` pass options.

Every ``KEY=VALUE`` of every command (these, and ``cmrm bench show/export --option``) is split by
:func:`cmrm.base.keyvalue.split_assignment`, one rule: at the first ``=``; KEY is stripped and must
not be empty; VALUE is kept verbatim (it may be empty or hold ``=``). A judge option's VALUE then
becomes an int, float or bool when it reads as one (:func:`cmrm.base.keyvalue.typed_value`: ``64`` ->
64, ``true`` -> True; anything else, ``null``, ``nan`` and ``inf`` included, stays a string); a
benchmark option's VALUE is typed by the option's declaration (``tiny=yes`` -> True).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..base.errors import CmrmError, ConfigError
from ..calibration.shift_file import abstain_message
from ..interventions.operators import axis_operators
from .config import EvalConfig
from .flags import (
    bench_option_values,
    parse_alphas,
    parse_bench_options,
    parse_keyed,
    parse_options,
    split_list,
)
from .presets import get_preset

logger = logging.getLogger(__name__)


def canonical_spec(spec: str) -> str:
    """A benchmark spec with an alias replaced by the benchmark's name (``JailbreakLLMs`` ->
    ``forbidden-questions``, ``JailbreakLLMs:eval`` -> ``forbidden-questions:eval``); files and
    unknown names are returned unchanged (loading reports unknown names)."""
    from ..data import parse_spec

    try:
        bench, path, split = parse_spec(spec)
    except CmrmError:
        return spec
    if path is not None:
        return spec
    return bench.name if split is None else f"{bench.name}:{split}"


def _canonical_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {canonical_spec(k): v for k, v in mapping.items()}


DEFAULT_METHODS: tuple[str, ...] = EvalConfig.__dataclass_fields__["methods"].default  # type: ignore[assignment]
_STEERED = ("dataset", "sample")
_STEERING_FLAGS = (
    ("--alpha", "alphas"),
    ("--positions", "positions"),
    ("--layers", "layers"),
    ("--contrast", "contrast"),
    ("--operator", "operators"),
)
_DATASET_FLAGS = (
    ("--shift", "shift"),
    ("--anchors", "anchors"),
    ("--estimator", "estimator"),
    ("--sequential", "sequential"),
)


def _check_defaults(preset: str | None, methods: str | None, given: Mapping[str, Any]) -> None:
    needs_shift = preset is None and methods is None and "dataset" in DEFAULT_METHODS
    if needs_shift and given.get("shift") is None and given.get("anchors") is None:
        raise ConfigError(
            f"no --method given, so the default methods {','.join(DEFAULT_METHODS)} run, and "
            "'dataset' needs a shift: pass --shift DIR (from `cmrm calibrate`) or --anchors "
            "BENCH:anchor (calibrate in this run), or choose methods, e.g. --method none,sample"
        )


def _check_used(
    config: EvalConfig,
    given: Mapping[str, Any],
    judge_options: Mapping[str, Any],
    bench_options: Mapping[str, Any],
    roots: Mapping[str, Any],
) -> None:
    """Reject flags that would change nothing in this run (silent no-ops)."""
    methods = ",".join(config.methods)
    steered = [m for m in config.methods if m in _STEERED]
    flags: tuple[tuple[str, str], ...] = () if steered else _STEERING_FLAGS + _DATASET_FLAGS
    if steered and not config.needs_shift:
        flags = _DATASET_FLAGS
    for flag, key in flags:
        if key in given:
            needs = (
                "dataset or sample"
                if (flag, key) in _STEERING_FLAGS
                else f"dataset (or sample with an operator among {'/'.join(axis_operators())})"
            )
            raise ConfigError(
                f"{flag} only applies to method {needs}, and this run's methods are {methods}; "
                f"add the method with --method or drop {flag}"
            )
    stray_methods = sorted(set(config.method_options) - set(config.methods))
    if stray_methods:
        raise ConfigError(
            f"--method-option for {stray_methods}, which this run does not run (methods: "
            f"{methods}); add the method with --method or drop the option"
        )
    used = {config.judge_for(b) for b in config.benchmarks}
    unused = sorted(set(judge_options) - used)
    if unused:
        raise ConfigError(
            f"--judge-option for judge(s) {unused}, which no benchmark of this run uses (judges "
            f"in use: {', '.join(sorted(used))}); choose the judge with --judge or drop the option"
        )
    specs = set(config.benchmarks) | ({config.anchors} if config.anchors else set())
    for flag, owners in (("--bench-option", bench_options), ("--root BENCH=DIR", roots)):
        stray = sorted(set(owners) - specs)
        if stray:
            raise ConfigError(
                f"{flag} names {stray}, which are not benchmarks of this run "
                f"({', '.join(sorted(specs))}); use the spec exactly as given to --bench"
            )


_SETTING_KEYS = ("alphas", "operators", "layers", "positions")


def recommended_fields(given: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``cmrm tune``'s recommendation stored in ``given["shift"]``, when the shift
    comes without any setting flag (``--alpha``, ``--operator``, ``--layers``, ``--positions``),
    as ``generate``, ``gap``, ``serve`` and ``export`` do; ``{}`` otherwise.

    The result's ``applied`` says in words what was applied (printed and kept in config.json);
    a recommendation that met none of its constraints is applied with a warning saying so.

    Raises:
        ConfigError: the recommendation in ``shift.json`` is malformed.
    """
    shift = given.get("shift")
    if shift is None or any(k in given for k in _SETTING_KEYS):
        return {}
    path = Path(shift) / "shift.json"
    if not path.is_file():
        return {}  # the run's shift check reports the missing file
    try:
        rec = json.loads(path.read_text(encoding="utf-8")).get("recommended")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return {}  # the shift's own loader reports the broken file
    if rec is None:
        return {}
    if not isinstance(rec, Mapping) or not isinstance(rec.get("alpha"), int | float):
        raise ConfigError(
            f"{path}: 'recommended' must be an object with a numeric 'alpha' (as `cmrm tune` "
            f"writes it), got {rec!r}; re-run `cmrm tune` or pass --alpha/--operator"
        )
    source = str(rec.get("source", "dataset"))
    if source != "dataset":
        raise ConfigError(
            f"{path} recommends a {source}-level setting; `cmrm eval --shift` evaluates "
            "dataset-level vectors: pass --method sample with the recommended --alpha/--operator"
        )
    out: dict[str, Any] = {
        "alphas": (float(rec["alpha"]),),
        "operators": (str(rec.get("operator", "add")),),
        "positions": str(rec.get("positions", "all")),
    }
    if rec.get("layers") not in (None, "all"):
        out["layers"] = str(rec["layers"])
    words = (
        f"tune's recommendation from {path}: {out['operators'][0]}, alpha {out['alphas'][0]:g}, "
        f"layers {out.get('layers', 'all')}, positions {out['positions']}"
    )
    abstain = abstain_message(path, rec, out["operators"][0], "evaluate")
    if abstain is not None:
        words = abstain
        logger.warning("%s", words)
    elif rec.get("feasible") is False:
        logger.warning(
            "%s met NONE of its tune constraints (it is only the closest setting): evaluating "
            "it anyway; pass --alpha/--operator/--layers to evaluate another setting",
            words,
        )
        words += " (met none of its constraints)"
    else:
        words = f"applying {words}"
        logger.info("%s", words)
    out["applied"] = words
    return out


def _merge(
    base: Mapping[str, Mapping[str, Any]], extra: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {k: dict(v) for k, v in base.items()}
    for owner, opts in extra.items():
        out.setdefault(owner, {}).update(opts)
    return out


def build_config(
    model: str,
    *,
    preset: str | None = None,
    judge_model: str | None = None,
    benches: Sequence[str] = (),
    methods: str | None = None,
    operators: str | None = None,
    method_options: Sequence[str] = (),
    alphas: str | None = None,
    judges: Sequence[str] = (),
    roots: Sequence[str] = (),
    judge_options: Sequence[str] = (),
    bench_options: Sequence[str] = (),
    **fields: Any,
) -> EvalConfig:
    """The run configuration from CLI strings; ``fields`` left None keep their defaults.

    With ``preset="paper"`` the paper's grid is the base and every flag given overrides it.

    Raises:
        ConfigError: unknown preset, malformed flag, or an invalid configuration.
    """
    make_preset = None if preset is None else get_preset(preset)
    given: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if benches:
        given["benchmarks"] = tuple(canonical_spec(b) for spec in benches for b in split_list(spec))
    if given.get("anchors") is not None:
        given["anchors"] = canonical_spec(given["anchors"])
    if methods is not None:
        given["methods"] = split_list(methods)
    if operators is not None:
        given["operators"] = split_list(operators)
    if method_options:
        given["method_options"] = parse_options(method_options, "--method-option")
    if alphas is not None:
        given["alphas"] = parse_alphas(alphas)
    judge, per_bench = parse_keyed(judges, "--judge")
    per_bench = _canonical_keys(per_bench)
    root, per_root = parse_keyed(roots, "--root")
    per_root = _canonical_keys(per_root)
    if judge is not None:
        given["judge"] = judge
    if root is not None:
        given["root"] = root
    if per_root:
        given["roots"] = per_root
    user_judge_options = parse_options(judge_options, "--judge-option")
    user_bench_options = _canonical_keys(parse_bench_options(bench_options, "--bench-option"))
    _check_defaults(preset, methods, given)
    if make_preset is None:
        given.update(recommended_fields(given))
        if judge_model is not None:
            raise ConfigError("--judge-model only applies to --preset paper; use --judge-option")
        config = EvalConfig(
            model=model,
            judges=per_bench,
            judge_options=user_judge_options,
            bench_options=user_bench_options,
            **given,
        )
    else:
        base = (
            make_preset(model)
            if judge_model is None
            else make_preset(model, judge_model=judge_model)
        )
        if "anchors" not in given and given.get("shift") is not None:
            given["anchors"] = None  # a given shift replaces the preset's calibration
        keep = set(given.get("benchmarks", base.benchmarks))
        config = replace(
            base,
            judges={**{b: j for b, j in base.judges.items() if b in keep}, **per_bench},
            judge_options=_merge(dict(base.judge_options), user_judge_options),
            bench_options=_merge(dict(base.bench_options), user_bench_options),
            **given,
        )
    _check_used(config, given, user_judge_options, user_bench_options, per_root)
    return config


__all__ = [
    "bench_option_values",
    "build_config",
    "canonical_spec",
    "parse_alphas",
    "parse_bench_options",
    "parse_keyed",
    "parse_options",
    "recommended_fields",
    "split_list",
]
