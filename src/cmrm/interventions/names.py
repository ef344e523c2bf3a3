"""Where an intervention's vectors come from, by name, without torch: ``dataset`` (one
calibrated vector per layer) or ``sample`` (per input). :mod:`.value` checks against
:data:`SOURCES`; ``--help`` lists it."""

from __future__ import annotations

from typing import Literal, get_args

Source = Literal["dataset", "sample"]
SOURCES: tuple[str, ...] = get_args(Source)

__all__ = ["SOURCES", "Source"]
