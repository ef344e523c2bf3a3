"""The names that options list in ``--help``, read from what accepts them.

Every option that takes a name from a fixed set (an operator, an estimator, a judge, a null
image, a format, a method, a position policy, a bundled model) lists the set in its help, and
the list is read here from the registry or the tuple that the option's value is checked
against, so that adding a name (a new operator module, a new judge) updates every ``--help``
with nothing else to edit. Only torch-free modules are imported: ``cmrm --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..calibration.names import CONTRASTS, ESTIMATORS, READ_POSITIONS
from ..data.images import NULL_SPECS
from ..data.splits import SPLITS
from ..generation.names import BASELINES
from ..interventions.names import SOURCES
from ..interventions.operators import operator_names
from ..judges.registry import JUDGES
from ..models.names import POSITIONS
from ..models.registry import MODELS


def one_of(names: Sequence[str], last: str = "or") -> str:
    """``a, b or c`` (``last="and"``: ``a, b and c``)."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def comma(names: Sequence[str]) -> str:
    """``a,b,c``: a comma list as the option takes it."""
    return ",".join(names)


OPERATORS_LISTED = one_of(operator_names())
"""Every operator, e.g. ``add, project, ... or mars`` (``add`` is the paper's)."""
ESTIMATORS_LISTED = one_of(ESTIMATORS)
CONTRASTS_LISTED = one_of(CONTRASTS)
READ_LISTED = one_of(READ_POSITIONS)
POSITIONS_LISTED = one_of(POSITIONS)
NULLS_LISTED = one_of(NULL_SPECS)
SPLITS_LISTED = one_of(SPLITS)
JUDGES_LISTED = one_of(JUDGES.names(providers=False))
MODELS_LISTED = one_of(MODELS.names())
SOURCES_LISTED = one_of(SOURCES, "and")
BASELINES_LISTED = one_of(BASELINES, "and")

__all__ = [
    "BASELINES_LISTED",
    "CONTRASTS_LISTED",
    "ESTIMATORS_LISTED",
    "JUDGES_LISTED",
    "MODELS_LISTED",
    "NULLS_LISTED",
    "OPERATORS_LISTED",
    "POSITIONS_LISTED",
    "READ_LISTED",
    "SOURCES_LISTED",
    "SPLITS_LISTED",
    "comma",
    "one_of",
]
