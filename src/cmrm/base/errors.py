"""Exceptions raised by cmrm for bad input or incompatible artefacts.

Every message says what was wrong, what was received, what was expected and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class CmrmError(Exception):
    """Base class for every error cmrm raises on purpose."""


class UnsupportedModelError(CmrmError):
    """The model's family has no adapter, or its decoder layers cannot be located."""


class LayerResolutionError(CmrmError):
    """The text-decoder layer list is missing, ambiguous, or a layer index is out of range."""


class IncompatibleShiftError(CmrmError):
    """Shift vectors do not fit the model they are applied to."""


class DataError(CmrmError):
    """An input file, record or image is missing or malformed."""


class ConfigError(CmrmError):
    """A run configuration is invalid or does not match the one being resumed."""


class UnknownNameError(CmrmError, KeyError):
    """A name looked up in a registry does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def unknown_name(
    kind: str, name: str, known: Sequence[str], *, also: Sequence[str] = ()
) -> UnknownNameError:
    """Build an UnknownNameError with a did-you-mean suggestion.

    ``known`` are listed in the message; ``also`` (aliases) may be suggested but are not listed.
    The suggestion ignores case (``jailbreakllms`` suggests ``JailbreakLLMs``).
    """
    candidates = {c.lower(): c for c in [*also, *known]}
    close = difflib.get_close_matches(name.lower(), list(candidates), n=1)
    hint = f" Did you mean {candidates[close[0]]!r}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known))}.")
