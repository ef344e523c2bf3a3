"""Lazy package exports: ``import cmrm`` (or ``cmrm.models``) stays cheap until a name is used.

A package lists ``{name: submodule}`` and installs the two functions :func:`attach` returns as its
module ``__getattr__`` and ``__dir__`` (PEP 562). Type checkers see the names through the
package's ``if TYPE_CHECKING:`` imports instead, so the public surface stays typed::

    if TYPE_CHECKING:
        from .steering import steer as steer
    __all__ = ["steer"]
    if not TYPE_CHECKING:
        __getattr__, __dir__ = attach(__name__, {"steer": ".steering"}, globals())
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping


def attach(
    package: str, exports: Mapping[str, str], namespace: MutableMapping[str, object]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each name to the module
    (relative like ``".steering"``, or absolute) that defines it; ``namespace`` is the
    package's ``globals()``, where a resolved name is cached."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value: object = getattr(importlib.import_module(exports[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
