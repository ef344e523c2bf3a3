"""Applications of the pipeline to a bundled organism: ``cmrm demo`` (gap, calibration, an
evaluation grid, a report) and ``cmrm organism eval`` (:mod:`.degradation`)."""

from .records import DemoRecord, DemoResult, Selection, best_setting
from .run import DemoConfig, run_demo

__all__ = ["DemoConfig", "DemoRecord", "DemoResult", "Selection", "best_setting", "run_demo"]
