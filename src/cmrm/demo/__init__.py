"""``cmrm demo``: the whole pipeline on the bundled model organism, offline, on a CPU."""

from .records import DemoRecord, best_setting
from .run import DemoConfig, DemoResult, run_demo

__all__ = ["DemoConfig", "DemoRecord", "DemoResult", "best_setting", "run_demo"]
