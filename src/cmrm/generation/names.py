"""The methods by name, without torch: the baselines (:mod:`.baselines`, which checks against
:data:`BASELINES`) and the interventions' sources; :data:`METHOD_NAMES` is everything ``cmrm eval
--method`` accepts, in the order ``--help`` lists it."""

from __future__ import annotations

from typing import Literal, get_args

from ..interventions.names import SOURCES

BaselineName = Literal["none", "text-only", "adashield", "ecso"]
BASELINES: tuple[str, ...] = get_args(BaselineName)
METHOD_NAMES: tuple[str, ...] = (*BASELINES, *SOURCES)

__all__ = ["BASELINES", "METHOD_NAMES", "BaselineName"]
