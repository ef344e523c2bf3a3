"""Parse ``cmrm eval``'s command-line strings: lists, ``KEY=VALUE`` pairs and options.

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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..base.errors import CmrmError, ConfigError
from ..base.keyvalue import split_assignment, typed_value


def split_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_alphas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(a) for a in split_list(text))
    except ValueError as err:
        raise ConfigError(
            f"--alpha must be comma-separated numbers like 0.5,1.0, got {text!r}"
        ) from err


def parse_keyed(values: Sequence[str], flag: str) -> tuple[str | None, dict[str, str]]:
    """``["J", "bench=K"]`` -> (``"J"``, ``{"bench": "K"}``); at most one unkeyed value."""
    default: str | None = None
    keyed: dict[str, str] = {}
    for value in values:
        if "=" not in value:
            if default is not None:
                raise ConfigError(f"{flag} given twice without BENCH= ({default!r}, {value!r})")
            if not value.strip():
                raise ConfigError(f"{flag} expects VALUE or BENCH=VALUE, got {value!r}")
            default = value
            continue
        key, rest = split_assignment(value, flag, "VALUE or BENCH=VALUE")
        if not rest:
            raise ConfigError(f"{flag} expects VALUE or BENCH=VALUE, got {value!r}")
        keyed[key] = rest
    return default, keyed


def _owned(values: Sequence[str], flag: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    form = "NAME.KEY=VALUE (e.g. llm.model=org/id)"
    for value in values:
        target, raw = split_assignment(value, flag, form)
        owner, dot, key = target.rpartition(".")
        if not (dot and owner and key):
            raise ConfigError(f"{flag} expects {form}, got {value!r}")
        out.setdefault(owner, {})[key] = raw
    return out


def parse_options(values: Sequence[str], flag: str) -> dict[str, dict[str, Any]]:
    """``["llm.model=x", "llm.max_new_tokens=64"]`` -> ``{"llm": {"model": "x", ...}}``, each
    VALUE typed by :func:`typed_value` (judge options: no declared types)."""
    return {
        owner: {key: typed_value(raw) for key, raw in opts.items()}
        for owner, opts in _owned(values, flag).items()
    }


def parse_bench_options(values: Sequence[str], flag: str) -> dict[str, dict[str, Any]]:
    """``["mm-safetybench.tiny=yes"]`` -> ``{"mm-safetybench": {"tiny": True}}``: each VALUE
    typed by the benchmark's own option declaration (strings where the spec is not a registered
    benchmark; loading then reports the problem)."""
    return {owner: bench_option_values(owner, opts) for owner, opts in _owned(values, flag).items()}


def bench_option_values(spec: str, options: Mapping[str, str]) -> dict[str, Any]:
    """String options of a benchmark spec, typed and checked by its declared options.

    Raises:
        DataError: an option the benchmark does not have, or a value it does not accept.
    """
    from ..data import parse_spec

    try:
        bench = parse_spec(spec)[0]
    except CmrmError:
        return dict(options)
    known = bench.resolve_options(options)  # raises on unknown names and bad values
    return {key: str(v) if isinstance(v, Path) else v for key, v in known.items() if key in options}
