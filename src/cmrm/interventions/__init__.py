"""Stage 4, interventions: how a shift changes a VLM's text-decoder hidden states at inference.

Owns the :class:`~cmrm.interventions.value.Intervention` value (:mod:`.value`), the operators and
their registry (:mod:`.operators`, one module per operator), the one context manager that owns
every steering hook (:func:`~cmrm.interventions.steering.steer`), sample-level shifts built per
request (:mod:`.build`) and :func:`~cmrm.interventions.apply.intervene`.

May import: ``base``, ``data``, ``models``, ``calibration`` (the ``ShiftVectors`` artefact, the
safety axes and the sample-level estimate). Imports are lazy, so that listing operator names
imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base.lazy import attach

if TYPE_CHECKING:
    from .apply import intervene as intervene
    from .names import SOURCES as SOURCES
    from .names import Source as Source
    from .operators import OPERATORS as OPERATORS
    from .operators import Operator as Operator
    from .operators import get_operator as get_operator
    from .value import Intervention as Intervention

_EXPORTS = {
    "OPERATORS": ".operators",
    "Operator": ".operators",
    "get_operator": ".operators",
    "intervene": ".apply",
    "SOURCES": ".names",
    "Intervention": ".value",
    "Source": ".names",
}

__all__ = [
    "OPERATORS",
    "SOURCES",
    "Intervention",
    "Operator",
    "Source",
    "get_operator",
    "intervene",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, _EXPORTS, globals())
