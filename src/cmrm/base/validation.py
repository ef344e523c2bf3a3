"""Checks of values that several modules accept from users, each written once.

``check_alpha`` is the one test of an intervention strength: used by :func:`cmrm.steer`,
:class:`cmrm.Intervention`, :class:`cmrm.evaluation.EvalConfig` and the gap analysis.
"""

from __future__ import annotations

import math

from .errors import CmrmError


def check_alpha(value: object, *, error: type[CmrmError] = CmrmError) -> float:
    """``value`` as a float if it is a finite real number; else raise ``error``.

    Example:
        >>> check_alpha(1)
        1.0
    """
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise error(f"alpha must be a finite number, got {value!r}")
    return float(value)
