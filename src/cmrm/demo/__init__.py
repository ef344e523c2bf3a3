"""Applications of the pipeline to a bundled organism: ``cmrm demo`` (calibration, tuning on
validation, held-out evaluation, the gap, a report) and ``cmrm organism eval``
(:mod:`.degradation`)."""

from .profiles import PROFILES, DemoProfile, get_profile
from .records import DemoRecord, DemoResult, Targets
from .run import DemoConfig, run_demo

__all__ = [
    "PROFILES",
    "DemoConfig",
    "DemoProfile",
    "DemoRecord",
    "DemoResult",
    "Targets",
    "get_profile",
    "run_demo",
]
