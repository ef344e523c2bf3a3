"""One small generic registry: names -> values, lazy targets, aliases, providers, did-you-mean.

A :class:`Registry` maps names to values of one type. A value is given either directly or as a
**lazy target**, the string ``"package.module:attr"``, imported the first time the name is
looked up, so that importing cmrm and listing names stays cheap and no registry imports a heavy
backend (torch, transformers, an organism) up front. A **provider** serves every name under a
prefix (``organism:``) from a lazily imported function returning ``{name: value}``; the list of
those names then lives in one place, inside the package that provides them.

Each domain module owns its instance (the class lives here, so none of them imports another):

=================  ===============================================  ==============================
registry           instance                                         values
=================  ===============================================  ==============================
benchmarks         :data:`cmrm.data.registry.BENCHMARKS`            ``Benchmark``
judges             :data:`cmrm.judges.registry.JUDGES`              judge factories
VLM families       :data:`cmrm.models.families.FAMILY_REGISTRY`     ``FamilySpec``
bundled models     :data:`cmrm.models.registry.MODELS`              loaders -> (model, processor)
eval presets       :data:`cmrm.evaluation.presets.PRESETS`          functions -> ``EvalConfig``
operators          :data:`cmrm.interventions.operators.OPERATORS`                 intervention operators
=================  ===============================================  ==============================

Example:
    >>> colours: Registry[int] = Registry("colour")
    >>> colours.register("red", 0xFF0000, description="pure red", aliases=("rouge",))
    >>> colours.get("rouge")
    16711680
    >>> colours.get("rde")
    Traceback (most recent call last):
    ...
    cmrm.base.errors.UnknownNameError: unknown colour 'rde'. Did you mean 'red'? Known: red.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from .errors import CmrmError, UnknownNameError, unknown_name

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class RegistryError(CmrmError):
    """A registration is invalid (duplicate name, bad target), or a lazy target cannot load."""


def import_target(target: str) -> object:
    """The object a ``"package.module:attr"`` string names (``attr`` may be dotted).

    Raises:
        RegistryError: the string is malformed, the module cannot be imported, or lacks ``attr``.
    """
    if not _TARGET.match(target):
        raise RegistryError(f"a lazy target must look like 'package.module:attr', got {target!r}")
    module_name, _, attr = target.partition(":")
    try:
        value: object = importlib.import_module(module_name)
    except ImportError as err:
        raise RegistryError(f"cannot import {module_name!r} (for {target!r}): {err}") from err
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise RegistryError(f"{module_name!r} has no attribute {attr!r} ({target!r})") from None
    return value


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: its target (a value or a lazy ``"module:attr"``), description and
    aliases. ``provider`` is the prefix of the provider that served it, or None."""

    name: str
    target: T | str
    description: str = ""
    aliases: tuple[str, ...] = ()
    provider: str | None = None

    @property
    def lazy(self) -> bool:
        return isinstance(self.target, str)


@dataclass(frozen=True)
class _Provider(Generic[T]):
    prefix: str
    target: Callable[[], Mapping[str, T]] | str
    description: str


class Registry(Generic[T]):
    """Names -> values of one kind (see the module docstring).

    Args:
        kind: what a name names, for messages (``"benchmark"``, ``"judge"``).
        check: applied to every value when it is first resolved (a lazy target after import, a
            provider's values after the call); returns the value as ``T`` or raises. Without it,
            values are trusted to be ``T``.
        callables: the values are functions or classes (factories, loaders): each must be
            callable; its signature is trusted to be ``T``'s (it cannot be checked at run time).
    """

    def __init__(
        self, kind: str, *, check: Callable[[object], T] | None = None, callables: bool = False
    ) -> None:
        self.kind = kind
        self._check = check
        self._callables = callables
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._providers: dict[str, _Provider[T]] = {}
        self._served: dict[str, dict[str, Entry[T]]] = {}
        self._values: dict[str, T] = {}

    # -- registration -------------------------------------------------------------------------

    def register(
        self,
        name: str,
        target: T | str,
        *,
        description: str = "",
        aliases: Iterable[str] = (),
    ) -> None:
        """Register ``name`` -> ``target`` (a value, or ``"package.module:attr"`` to import later).

        Raises:
            RegistryError: the name or an alias is taken (also by a provider's prefix), or a
                string target is not of the ``module:attr`` form.
        """
        aliases = tuple(aliases)
        if isinstance(target, str) and not _TARGET.match(target):
            raise RegistryError(
                f"{self.kind} {name!r}: a string target is a lazy 'package.module:attr' "
                f"reference, got {target!r}"
            )
        for key in (name, *aliases):
            self._refuse_taken(key)
        if len(set(aliases) | {name}) != len(aliases) + 1:
            raise RegistryError(f"{self.kind} {name!r}: aliases repeat {list(aliases)}")
        self._entries[name] = Entry(name, target, description, aliases)
        for alias in aliases:
            self._aliases[alias] = name

    def add_provider(
        self,
        prefix: str,
        target: Callable[[], Mapping[str, T]] | str,
        *,
        description: str = "",
    ) -> None:
        """Serve every name starting with ``prefix`` from ``target()`` (called once, lazily).

        ``target`` is a function, or ``"package.module:function"``, returning ``{name: value}``
        with full names (each starting with ``prefix``).

        Raises:
            RegistryError: the prefix overlaps another provider's, or a registered name has it.
        """
        if not prefix:
            raise RegistryError(f"{self.kind} provider: the prefix must not be empty")
        for other in self._providers:
            if other.startswith(prefix) or prefix.startswith(other):
                raise RegistryError(
                    f"{self.kind} provider prefix {prefix!r} overlaps the provider {other!r}"
                )
        taken = [n for n in [*self._entries, *self._aliases] if n.startswith(prefix)]
        if taken:
            raise RegistryError(
                f"{self.kind} provider prefix {prefix!r} covers registered name(s) {taken}"
            )
        if isinstance(target, str) and not _TARGET.match(target):
            raise RegistryError(
                f"{self.kind} provider {prefix!r}: expected 'package.module:function', got "
                f"{target!r}"
            )
        self._providers[prefix] = _Provider(prefix, target, description)

    def _refuse_taken(self, key: str) -> None:
        if key in self._entries or key in self._aliases:
            owner = self._aliases.get(key, key)
            raise RegistryError(
                f"{self.kind} {key!r} is already registered"
                + (f" (an alias of {owner!r})" if owner != key else "")
                + "; choose another name"
            )
        prefix = self._prefix_of(key)
        if prefix is not None:
            raise RegistryError(
                f"{self.kind} {key!r} falls under the provider prefix {prefix!r}; register it "
                "in that provider"
            )

    # -- lookup -------------------------------------------------------------------------------

    def _prefix_of(self, name: str) -> str | None:
        return next((p for p in self._providers if name.startswith(p)), None)

    def _served_by(self, prefix: str) -> dict[str, Entry[T]]:
        if prefix not in self._served:
            provider = self._providers[prefix]
            make = provider.target
            function = import_target(make) if isinstance(make, str) else make
            if not callable(function):
                raise RegistryError(f"{self.kind} provider {prefix!r}: {make!r} is not callable")
            served = function()
            if not isinstance(served, Mapping):
                raise RegistryError(
                    f"{self.kind} provider {prefix!r} returned {type(served).__name__}, "
                    "expected a mapping {name: value}"
                )
            entries: dict[str, Entry[T]] = {}
            for name, value in served.items():
                if not isinstance(name, str) or not name.startswith(prefix):
                    raise RegistryError(
                        f"{self.kind} provider {prefix!r} served {name!r}, which does not start "
                        f"with {prefix!r}"
                    )
                checked = self._checked(name, value)
                entries[name] = Entry(name, checked, provider.description, (), prefix)
                self._values[name] = checked
            self._served[prefix] = entries
        return self._served[prefix]

    def _find(self, name: str) -> Entry[T] | None:
        canonical = self._aliases.get(name, name)
        if canonical in self._entries:
            return self._entries[canonical]
        prefix = self._prefix_of(name)
        if prefix is not None:
            return self._served_by(prefix).get(name)
        return None

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` (or an alias) resolves; may load the provider of its prefix."""
        return isinstance(name, str) and self._find(name) is not None

    def entry(self, name: str) -> Entry[T]:
        """The entry of ``name`` or of the alias ``name`` (its target not imported yet).

        Raises:
            UnknownNameError: not registered, with a did-you-mean suggestion.
        """
        found = self._find(name)
        if found is None:
            raise self.unknown(name)
        return found

    def canonical(self, name: str) -> str:
        """The registered name of ``name`` (itself, or the name an alias points to)."""
        return self.entry(name).name

    def get(self, name: str) -> T:
        """The value of ``name`` (or alias), importing a lazy target on first use.

        Raises:
            UnknownNameError: not registered, with a did-you-mean suggestion.
            RegistryError: its lazy target cannot be imported or fails ``check``.
        """
        entry = self.entry(name)
        if entry.name not in self._values:
            target = entry.target
            value = import_target(target) if isinstance(target, str) else target
            self._values[entry.name] = self._checked(entry.name, value)
        return self._values[entry.name]

    def _checked(self, name: str, value: object) -> T:
        if self._callables and not callable(value):
            raise RegistryError(
                f"{self.kind} {name!r} must be callable (a function or class), got "
                f"{type(value).__name__}"
            )
        if self._check is None:
            return cast(T, value)  # no check given: the registrant vouches for the type
        try:
            return self._check(value)
        except (TypeError, ValueError) as err:
            raise RegistryError(f"{self.kind} {name!r}: {err}") from err

    def names(self, *, providers: bool = True) -> list[str]:
        """Registered names in registration order, then (``providers=True``) every provider's
        names, which loads the providers."""
        out = list(self._entries)
        if providers:
            for prefix in self._providers:
                out.extend(self._served_by(prefix))
        return out

    def entries(self, *, providers: bool = True) -> list[Entry[T]]:
        """Entries in the order of :meth:`names`."""
        return [self.entry(name) for name in self.names(providers=providers)]

    def values(self, *, providers: bool = True) -> list[T]:
        """Every value (importing every lazy target), in the order of :meth:`names`."""
        return [self.get(name) for name in self.names(providers=providers)]

    def prefixes(self) -> list[str]:
        """The provider prefixes, in registration order (nothing is loaded)."""
        return list(self._providers)

    def unknown(self, name: str) -> UnknownNameError:
        """The error for an unknown ``name``: did-you-mean over names, aliases and the names
        of providers (a provider that cannot load is listed as ``prefix*``)."""
        known = list(self._entries)
        for prefix in self._providers:
            try:
                known.extend(self._served_by(prefix))
            except RegistryError as err:
                logger.debug("provider %s not loaded for suggestions: %s", prefix, err)
                known.append(f"{prefix}*")
        return unknown_name(self.kind, name, known, also=list(self._aliases))

    def __repr__(self) -> str:
        return (
            f"Registry({self.kind!r}, names={list(self._entries)}, "
            f"providers={list(self._providers)})"
        )


def instance_of(cls: type[T]) -> Callable[[object], T]:
    """A ``check`` for :class:`Registry`: the value must be an instance of ``cls``."""

    def check(value: object) -> T:
        if not isinstance(value, cls):
            raise TypeError(f"expected a {cls.__name__}, got {type(value).__name__}")
        return value

    return check
