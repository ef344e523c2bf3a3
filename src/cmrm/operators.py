"""The registry of intervention operators (``add``, ``project``, ``norm-preserving``, ``gated``).

:data:`OPERATORS` is owned here so that the intervention code can register into it, and the CLI
and evaluation can look names up, without importing each other (this module imports only
:mod:`cmrm.registry`). It starts empty: each operator is registered where it is defined, e.g.::

    from cmrm.operators import OPERATORS
    OPERATORS.register("add", Add, description="h + alpha * v (the paper's CMRM)")

or lazily, so that listing operators imports nothing::

    OPERATORS.register("add", "cmrm.interventions.add:Add", description="...")

A value is an operator factory (a class or function) called with the operator's options.
"""

from __future__ import annotations

from collections.abc import Callable

from .registry import Registry

OperatorFactory = Callable[..., object]
"""``factory(**options) -> operator``; narrowed by the intervention code to its operator type."""

OPERATORS: Registry[OperatorFactory] = Registry("operator", callables=True)
