"""``cmrm tune``: find an intervention setting for *your* model on validation data.

See :mod:`cmrm.tuning.space` (the grid), :mod:`cmrm.tuning.objective` (the score and the
constraints) and :mod:`cmrm.tuning.run` (the search and its outputs).
"""

from .config import TuneConfig
from .objective import Objective, Score, TrialMetrics
from .result import Trial, TuneResult
from .run import run_tune
from .space import DEFAULT_ALPHAS, Setting, TuneSpace, Variant

__all__ = [
    "DEFAULT_ALPHAS",
    "Objective",
    "Score",
    "Setting",
    "Trial",
    "TrialMetrics",
    "TuneConfig",
    "TuneResult",
    "TuneSpace",
    "Variant",
    "run_tune",
]
