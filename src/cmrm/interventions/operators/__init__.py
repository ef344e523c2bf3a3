"""Intervention operators and their registry: one module per operator, found by name.

Each module of this package but :mod:`.base` is one operator: its name is the module's name with
``_`` spelled ``-`` (``norm_preserving.py`` is ``norm-preserving``), it defines the class and
``OPERATOR = TheClass``, and the first line of its docstring (after ``name —``) is the description
``--help`` and ``cmrm ... --operator`` errors show. :data:`OPERATORS` lists the modules without
importing them (so listing or checking names imports neither torch nor the intervention code);
the class is imported on first use. A new operator is therefore one new module here plus its
test — nothing else to edit::

    # cmrm/interventions/operators/clamp.py
    \"\"\"``clamp`` — add, then clip each coordinate to the text-only range.\"\"\"
    @dataclass(frozen=True)
    class Clamp: ...
    OPERATOR = Clamp

The built-in operators come first, in the order of :data:`BUILT_IN`; any other module after
them, alphabetically. A value of the registry is an operator class, called without arguments;
:func:`get_operator` returns the instance.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ...base.lazy import attach
from ...base.registry import Registry

if TYPE_CHECKING:
    from .add import Add as Add
    from .base import Operator as Operator
    from .conditional import Conditional as Conditional
    from .gated import Gated as Gated
    from .norm_preserving import NormPreserving as NormPreserving
    from .project import Project as Project

OperatorFactory = Callable[..., object]
"""``factory() -> operator``; :func:`get_operator` narrows it."""

BUILT_IN = ("add", "project", "norm-preserving", "gated", "conditional")
"""The built-in operators, in the order ``--help`` and the tune grid list them."""

_HERE = Path(__file__).resolve().parent
_NOT_OPERATORS = {"__init__", "base"}


def _description(path: Path) -> str:
    """The first docstring line of an operator module, without its leading ``name —``."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    return first.split(" — ", 1)[1] if " — " in first else first


def _discover() -> Registry[OperatorFactory]:
    registry: Registry[OperatorFactory] = Registry("operator", callables=True)
    modules = {
        p.stem.replace("_", "-"): p for p in _HERE.glob("*.py") if p.stem not in _NOT_OPERATORS
    }
    order = [n for n in BUILT_IN if n in modules] + sorted(set(modules) - set(BUILT_IN))
    for name in order:
        path = modules[name]
        registry.register(name, f"{__name__}.{path.stem}:OPERATOR", description=_description(path))
    return registry


OPERATORS: Registry[OperatorFactory] = _discover()
"""Every operator by name (lazy: a class is imported on first :meth:`~Registry.get`)."""


def operator_names() -> tuple[str, ...]:
    """Every operator name, in registration order."""
    return tuple(OPERATORS.names())


def needs_axis(name: str) -> bool:
    """Whether the operator ``name`` needs safety axes (imports its class)."""
    return bool(getattr(OPERATORS.get(name), "needs_axis", False))


def axis_operators() -> tuple[str, ...]:
    """The operators that need safety axes, in registration order (imports every class)."""
    return tuple(name for name in operator_names() if needs_axis(name))


def get_operator(name: str) -> Operator:
    """The operator registered as ``name``.

    Raises:
        UnknownNameError: not registered, with a did-you-mean suggestion.
    """
    return cast("Operator", OPERATORS.get(name)())


_EXPORTS = {
    "Operator": ".base",
    "Add": ".add",
    "Project": ".project",
    "NormPreserving": ".norm_preserving",
    "Gated": ".gated",
    "Conditional": ".conditional",
}

__all__ = [
    "BUILT_IN",
    "OPERATORS",
    "Add",
    "Conditional",
    "Gated",
    "NormPreserving",
    "Operator",
    "OperatorFactory",
    "Project",
    "axis_operators",
    "get_operator",
    "needs_axis",
    "operator_names",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, _EXPORTS, globals())
