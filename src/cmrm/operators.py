"""The registry of intervention operators: ``add``, ``project``, ``norm-preserving``, ``gated``,
``conditional``.

:data:`OPERATORS` maps each name to its class in :mod:`cmrm.interventions.operators`, lazily, so
that listing or checking operator names imports neither torch nor the intervention code (this
module imports only :mod:`cmrm.registry`). A new operator is one class plus one line here::

    OPERATORS.register("clamp", "cmrm.interventions.operators:Clamp", description="...")

A value is an operator class, called without arguments; :func:`cmrm.interventions.get_operator`
returns the instance.
"""

from __future__ import annotations

from collections.abc import Callable

from .registry import Registry

OperatorFactory = Callable[..., object]
"""``factory() -> operator``; :func:`cmrm.interventions.operators.get_operator` narrows it."""

OPERATORS: Registry[OperatorFactory] = Registry("operator", callables=True)
_MODULE = "cmrm.interventions.operators"
OPERATORS.register("add", f"{_MODULE}:Add", description="h + alpha*v (the paper's CMRM)")
OPERATORS.register(
    "project",
    f"{_MODULE}:Project",
    description="h + alpha*<v,u> u: only the safety-direction part of the shift (ShiftDC-style)",
)
OPERATORS.register(
    "norm-preserving",
    f"{_MODULE}:NormPreserving",
    description="(h + alpha*v) rescaled to the norm of h",
)
OPERATORS.register(
    "gated",
    f"{_MODULE}:Gated",
    description="along the safety direction, never past the text-only reference (ASTRA-style)",
)
OPERATORS.register(
    "conditional",
    f"{_MODULE}:Conditional",
    description="add, only on rows whose state reads as harmful (above the axis threshold)",
)


def operator_names() -> tuple[str, ...]:
    """Every operator name, in registration order."""
    return tuple(OPERATORS.names())


def needs_axis(name: str) -> bool:
    """Whether the operator ``name`` needs safety axes (imports its class)."""
    return bool(getattr(OPERATORS.get(name), "needs_axis", False))
