"""Evaluation runs: a benchmark x method x alpha grid, judged, summarised with intervals.

See ``docs/evaluation.md`` for the run directory layout, metric definitions and resume semantics.
"""

from .config import (
    NO_ALPHA_METHODS,
    PAPER_ALPHAS,
    PAPER_JUDGE_MODEL,
    RUNTIME_KEYS,
    Cell,
    EvalConfig,
    check_config,
    default_judge,
    paper_preset,
)
from .metrics import METRICS, CellSummary, Estimate, Summary, bootstrap, summarise
from .runner import run_eval, summarise_run
from .sources import attach_null, check_anchor_leak
from .store import RowStore, read_rows, recover_tail

__all__ = [
    "METRICS",
    "NO_ALPHA_METHODS",
    "PAPER_ALPHAS",
    "PAPER_JUDGE_MODEL",
    "RUNTIME_KEYS",
    "Cell",
    "CellSummary",
    "Estimate",
    "EvalConfig",
    "RowStore",
    "Summary",
    "attach_null",
    "bootstrap",
    "check_anchor_leak",
    "check_config",
    "default_judge",
    "paper_preset",
    "read_rows",
    "recover_tail",
    "run_eval",
    "summarise",
    "summarise_run",
]
