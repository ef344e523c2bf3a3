"""``KEY=VALUE`` command-line options: one rule for every flag that takes them.

``cmrm eval --judge-option/--bench-option/--judge/--root`` and ``cmrm bench show/export
--option`` all split with :func:`split_assignment`; values without a declared type (judge
options) are typed by :func:`typed_value`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError


def split_assignment(text: str, flag: str, form: str = "KEY=VALUE") -> tuple[str, str]:
    """``"KEY=VALUE"`` -> ``("KEY", "VALUE")``: the one rule for every KEY=VALUE flag.

    Split at the first ``=``; KEY is stripped and must not be empty; VALUE is kept verbatim.

    Raises:
        ConfigError: no ``=`` or an empty KEY; the message shows ``form``, the expected shape.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{flag} expects {form}, got {text!r}")
    return key, value


def typed_value(text: str) -> Any:
    """``"true"``/``"false"`` -> bool, ``"64"`` -> 64, ``"0.5"`` -> 0.5; anything else (``null``,
    ``nan``, ``inf`` included) stays the string."""
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def parse_assignments(values: Sequence[str], flag: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}`` (strings; a repeated KEY is an error)."""
    out: dict[str, str] = {}
    for text in values:
        key, value = split_assignment(text, flag)
        if key in out:
            raise ConfigError(f"{flag} gives {key!r} twice ({out[key]!r}, {value!r}); give it once")
        out[key] = value
    return out
