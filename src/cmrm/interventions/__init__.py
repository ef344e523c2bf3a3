"""Interventions on a VLM's text-decoder hidden states: one value, several operators.

See :mod:`cmrm.interventions.value` (the :class:`Intervention` value) and
:mod:`cmrm.interventions.operators` (``add``, ``project``, ``norm-preserving``, ``gated``).
"""

from ..operators import OPERATORS
from .apply import intervene
from .operators import Operator, get_operator
from .value import SOURCES, Intervention, Source

__all__ = [
    "OPERATORS",
    "SOURCES",
    "Intervention",
    "Operator",
    "Source",
    "get_operator",
    "intervene",
]
