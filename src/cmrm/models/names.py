"""The position policies by name, without torch: what ``--positions`` accepts and lists.

:mod:`cmrm.models.positions` (the masks themselves) checks against :data:`POSITIONS`; the CLI
lists it in ``--help``. A new policy is a name here and its mask in :mod:`.positions`.
"""

from __future__ import annotations

from typing import Literal, get_args

Positions = Literal["all", "text", "last"]
POSITIONS: tuple[str, ...] = get_args(Positions)

__all__ = ["POSITIONS", "Positions"]
