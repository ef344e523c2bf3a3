"""The one place where serving and export turn settings into an intervention on the model.

A request's intervention is resolved from the server's own (:class:`ServedIntervention`), the
request's ``cmrm`` field and the operator's :class:`OverridePolicy` into a :class:`Choice`;
:func:`build_steering` makes the :class:`~cmrm.generate.Steering` for it, and
:func:`intervention_context` applies it around a batch (composed from the public
:func:`~cmrm.steering.steer` and :func:`~cmrm.estimate.sample_shifts`). Swapping the engine's
intervention type means changing this module only.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from PIL import Image

from ..errors import CmrmError, unknown_name
from ..estimate import sample_shifts
from ..generate import Method, Steering
from ..models.vlm import VLM
from ..steering import steer
from .config import OverridePolicy, ServedIntervention
from .errors import APIError, bad_request

OPERATORS: tuple[str, ...] = ("add",)
"""Operators this version applies: ``add`` (the paper's ``h + alpha * v``)."""
PLANNED_OPERATORS: tuple[str, ...] = ("project", "norm-preserving", "gated")
METHODS: tuple[str, ...] = ("none", "dataset", "sample")
_KEYS = ("method", "alpha", "operator")


def check_operator(name: str) -> str:
    """``name`` if this version can apply it.

    Raises:
        CmrmError: the operator is planned but not available yet, or unknown.
    """
    if name in OPERATORS:
        return name
    if name in PLANNED_OPERATORS:
        raise CmrmError(
            f"operator {name!r} is not available in this version of cmrm; "
            f"available: {', '.join(OPERATORS)}"
        )
    raise unknown_name("operator", name, list(OPERATORS))


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
        check_operator(str(operator))
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


def build_steering(choice: Choice, served: ServedIntervention) -> Steering:
    """The engine's intervention value for ``choice`` (positions, layers, null from the server)."""
    check_operator(choice.operator)
    return Steering(
        method=cast(Method, choice.method),
        alpha=choice.alpha,
        positions=served.positions,
        layers=served.layers,
        shift=served.shift if choice.method == "dataset" else None,
        null=served.null,
    )


def intervention_context(
    vlm: VLM,
    prompts: Sequence[str],
    images: Sequence[Image.Image | None],
    steering: Steering,
) -> contextlib.AbstractContextManager[Any]:
    """Enter around one batch's prefill and decoding; sample-level shifts are computed here, one
    per row (rows without an image get none)."""
    if steering.method == "dataset":
        assert steering.shift is not None
        return steer(
            vlm,
            steering.shift,
            alpha=steering.alpha,
            layers=steering.layers or "all",
            positions=steering.positions,
        )
    if steering.method == "sample":
        shift = sample_shifts(
            vlm,
            prompts,
            images,
            null=steering.null,
            contrast=steering.contrast,
            layers=steering.layers,
        )
        return steer(vlm, shift, alpha=steering.alpha, positions=steering.positions)
    return contextlib.nullcontext()


def describe(
    choice: Choice, served: ServedIntervention, *, has_image: bool, overridden: bool
) -> dict[str, Any]:
    """The ``cmrm`` field of a response: what was applied to this request."""
    steering = build_steering(choice, served)
    out = steering.describe()
    out["operator"] = choice.operator
    out["image"] = has_image
    out["shifted"] = choice.method != "none" and has_image and choice.alpha != 0
    out["overridden"] = overridden
    return out
