"""Build an :class:`EvalConfig` from command-line strings (``cmrm eval``'s flags).

Syntax:
- ``--method none,dataset`` and ``--alpha 0.5,1`` are comma-separated lists;
- ``--judge J`` sets the judge of every benchmark, ``--judge BENCH=J`` one benchmark's;
- ``--root DIR`` / ``--root BENCH=DIR`` likewise for data roots;
- ``--judge-option JUDGE.KEY=VALUE`` and ``--bench-option BENCH.KEY=VALUE`` pass options
  (VALUE becomes an int, float or bool when it reads as one: ``64`` -> 64, ``true`` -> True;
  anything else, ``null`` included, stays a string).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from .config import EvalConfig
from .presets import get_preset


def split_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_alphas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(a) for a in split_list(text))
    except ValueError as err:
        raise ConfigError(
            f"--alpha must be comma-separated numbers like 0.5,1.0, got {text!r}"
        ) from err


def _value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_keyed(values: Sequence[str], flag: str) -> tuple[str | None, dict[str, str]]:
    """``["J", "bench=K"]`` -> (``"J"``, ``{"bench": "K"}``); at most one unkeyed value."""
    default: str | None = None
    keyed: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep:
            key, rest = "", value
        if not key and sep:
            raise ConfigError(f"{flag} expects VALUE or BENCH=VALUE, got {value!r}")
        if not key:
            if default is not None:
                raise ConfigError(f"{flag} given twice without BENCH= ({default!r}, {value!r})")
            default = rest
        elif not rest:
            raise ConfigError(f"{flag} expects VALUE or BENCH=VALUE, got {value!r}")
        else:
            keyed[key] = rest
    return default, keyed


def parse_options(values: Sequence[str], flag: str) -> dict[str, dict[str, Any]]:
    """``["llm.model=x", "llm.max_new_tokens=64"]`` -> ``{"llm": {"model": "x", ...}}``."""
    out: dict[str, dict[str, Any]] = {}
    for value in values:
        target, sep, raw = value.partition("=")
        owner, dot, key = target.rpartition(".")
        if not (sep and dot and owner and key):
            raise ConfigError(
                f"{flag} expects NAME.KEY=VALUE (e.g. llm.model=org/id), got {value!r}"
            )
        out.setdefault(owner, {})[key] = _value(raw)
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
        given["benchmarks"] = tuple(b for spec in benches for b in split_list(spec))
    if methods is not None:
        given["methods"] = split_list(methods)
    if operators is not None:
        given["operators"] = split_list(operators)
    if method_options:
        given["method_options"] = parse_options(method_options, "--method-option")
    if alphas is not None:
        given["alphas"] = parse_alphas(alphas)
    judge, per_bench = parse_keyed(judges, "--judge")
    root, per_root = parse_keyed(roots, "--root")
    if judge is not None:
        given["judge"] = judge
    if root is not None:
        given["root"] = root
    if per_root:
        given["roots"] = per_root
    if make_preset is None:
        if judge_model is not None:
            raise ConfigError("--judge-model only applies to --preset paper; use --judge-option")
        return EvalConfig(
            model=model,
            judges=per_bench,
            judge_options=parse_options(judge_options, "--judge-option"),
            bench_options=parse_options(bench_options, "--bench-option"),
            **given,
        )
    base = (
        make_preset(model) if judge_model is None else make_preset(model, judge_model=judge_model)
    )
    if "anchors" not in given and given.get("shift") is not None:
        given["anchors"] = None  # a given shift replaces the preset's calibration
    keep = set(given.get("benchmarks", base.benchmarks))
    return replace(
        base,
        judges={**{b: j for b, j in base.judges.items() if b in keep}, **per_bench},
        judge_options=_merge(
            dict(base.judge_options), parse_options(judge_options, "--judge-option")
        ),
        bench_options=_merge(
            dict(base.bench_options), parse_options(bench_options, "--bench-option")
        ),
        **given,
    )
