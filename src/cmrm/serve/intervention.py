"""The one place where serving and export turn settings into an intervention on the model.

A request's intervention is resolved from the server's own (:class:`ServedIntervention`), the
request's ``cmrm`` field and the operator's :class:`OverridePolicy` into a :class:`Choice`;
:func:`build_steering` makes the :class:`~cmrm.interventions.Intervention` for it (``None`` for
method ``none``), and :func:`intervention_context` applies it around a batch
(:func:`~cmrm.interventions.intervene`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from PIL import Image

from ..base.errors import CmrmError
from ..interventions.apply import intervene
from ..interventions.operators import OPERATORS, needs_axis
from ..interventions.value import Intervention
from ..models.vlm import VLM
from .config import OverridePolicy, ServedIntervention
from .errors import APIError, bad_request

METHODS: tuple[str, ...] = ("none", "dataset", "sample")
_KEYS = ("method", "alpha", "operator")


def check_operator(name: str, served: ServedIntervention | None = None) -> str:
    """``name`` if it is a registered operator the server can apply.

    Raises:
        CmrmError: unknown (with did-you-mean), or ``project``/``gated`` while the server's
            shift has no safety axes.
    """
    canonical = OPERATORS.canonical(name)
    no_axes = served is None or served.shift is None or served.shift.axes is None
    if served is not None and no_axes and needs_axis(canonical):
        raise CmrmError(
            f"operator {canonical!r} needs the safety axes of a calibrated shift, and this "
            "server has none: start it with --shift DIR calibrated on anchors with harmful "
            "and benign kinds"
        )
    return canonical


@dataclass(frozen=True)
class Choice:
    """The intervention one request gets; requests with equal choices may share a batch."""

    method: str
    alpha: float
    operator: str


def served_choice(served: ServedIntervention) -> Choice:
    return Choice(served.method, float(served.alpha), served.operator)


def _requested_alpha(value: Any, policy: OverridePolicy) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request(f"cmrm.alpha must be a finite number, got {value!r}", param="cmrm.alpha")
    if abs(value) > policy.max_alpha:
        raise bad_request(
            f"cmrm.alpha {value} is outside this server's range "
            f"[-{policy.max_alpha}, {policy.max_alpha}]",
            param="cmrm.alpha",
        )
    return float(value)


def resolve(
    requested: Mapping[str, Any] | None, served: ServedIntervention, policy: OverridePolicy
) -> tuple[Choice, bool]:
    """The request's choice and whether it overrides the server's.

    Raises:
        APIError: 400 for an invalid field, 403 when the policy forbids overriding.
    """
    base = served_choice(served)
    if not requested:
        return base, False
    unknown = sorted(set(requested) - set(_KEYS))
    if unknown:
        raise bad_request(
            f"unknown cmrm field(s) {unknown}; a request may set {', '.join(_KEYS)}",
            param="cmrm",
        )
    method = requested.get("method", base.method)
    if method not in METHODS:
        raise bad_request(
            f"cmrm.method must be one of {', '.join(METHODS)}, got {method!r}", param="cmrm.method"
        )
    alpha = _requested_alpha(requested["alpha"], policy) if "alpha" in requested else base.alpha
    operator = requested.get("operator", base.operator)
    try:
        operator = check_operator(str(operator), served)
    except CmrmError as err:
        raise bad_request(str(err), param="cmrm.operator") from err
    choice = Choice(str(method), alpha, str(operator))
    if choice == base:
        return base, False
    if not policy.allow:
        raise APIError(
            403,
            f"this server does not allow per-request interventions; it applies "
            f"{describe_choice(base)} to every request (the operator can start it with "
            "--allow-override). Drop the cmrm field",
            param="cmrm",
            code="override_not_allowed",
        )
    if choice.method == "dataset" and served.shift is None:
        raise bad_request(
            "cmrm.method 'dataset' needs a dataset-level shift, and this server was started "
            "without --shift; use 'sample' or 'none'",
            param="cmrm.method",
        )
    return choice, True


def describe_choice(choice: Choice) -> str:
    if choice.method == "none":
        return "no intervention"
    return f"method={choice.method} alpha={choice.alpha:g} operator={choice.operator}"


def build_steering(choice: Choice, served: ServedIntervention) -> Intervention | None:
    """The intervention for ``choice`` (positions, layers, null and shift from the server);
    ``None`` for method ``none``."""
    if choice.method == "none":
        return None
    return Intervention(
        source=cast(Any, choice.method),
        operator=choice.operator,
        alpha=choice.alpha,
        positions=cast(Any, served.positions),
        layers=served.layers,
        shift=served.shift,
        null=served.null,
    )


def intervention_context(
    vlm: VLM,
    prompts: Sequence[str],
    images: Sequence[Image.Image | None],
    steering: Intervention | None,
) -> contextlib.AbstractContextManager[Any]:
    """Enter around one batch's prefill and decoding; sample-level shifts are computed here, one
    per row (rows without an image get none)."""
    return intervene(vlm, steering, prompts, images)


def describe(
    choice: Choice, served: ServedIntervention, *, has_image: bool, overridden: bool
) -> dict[str, Any]:
    """The ``cmrm`` field of a response: what was applied to this request."""
    steering = build_steering(choice, served)
    out: dict[str, Any] = {"method": "none"} if steering is None else steering.describe()
    out["operator"] = choice.operator
    out["image"] = has_image
    out["shifted"] = choice.method != "none" and has_image and choice.alpha != 0
    out["overridden"] = overridden
    return out
