"""Each demo record's paired difference to ``none`` on the same held-out items.

Two settings evaluated on the same items differ by less noise than their two intervals suggest
(most items get the same verdict under both); :func:`cmrm.evaluation.paired.paired_difference`
bootstraps the per-item differences. Here every record is compared with the ``none`` rows of
``runs/baselines`` on each suite it was evaluated on, for the metrics the table reports. The keys
follow :attr:`DemoRecord.intervals`: ``<suite>.<metric>`` for the harmful suites,
``over_refusal_rate`` and ``qa_accuracy``. A suite a setting cannot change (a text-only suite under
an intervention: rows without an image are never steered) is not re-evaluated and has no entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..evaluation.paired import paired_metrics, run_cells
from .profiles import DemoProfile
from .records import HARMFUL_METRICS, DemoRecord

Cells = dict[tuple[str, str, float | None, str], list[dict[str, Any]]]


def _metrics(profile: DemoProfile) -> list[tuple[str, str, str]]:
    """``(suite, metric, key)`` for every number the table reports."""
    out = [
        (suite, metric, f"{suite.split(':', 1)[-1]}.{metric}")
        for suite in profile.harmful
        for metric in HARMFUL_METRICS
    ]
    out.append((profile.benign, "over_refusal_rate", "over_refusal_rate"))
    out.append((profile.qa, "accuracy", "qa_accuracy"))
    return out


def _rows_of(cells: Cells, record: DemoRecord, suite: str) -> list[dict[str, Any]] | None:
    for (bench, method, alpha, operator), rows in cells.items():
        if bench != suite or method != record.method or alpha != record.alpha:
            continue
        if record.operator is not None and operator != record.operator:
            continue
        return rows
    return None


def attach_paired(
    records: Sequence[DemoRecord], runs_dir: Path, profile: DemoProfile, seed: int = 0
) -> list[DemoRecord]:
    """The records with :attr:`DemoRecord.paired` filled from their run folders."""
    cache: dict[str, Cells] = {}

    def cells(run: str) -> Cells:
        if run not in cache:
            cache[run] = run_cells(runs_dir / run)
        return cache[run]

    none = next((r for r in records if r.method == "none"), None)
    if none is None or none.run is None:
        return list(records)
    out = []
    for record in records:
        if record.run is None or record.method == "none":
            out.append(record)
            continue
        paired: dict[str, list[float | int | None]] = {}
        for suite, metric, key in _metrics(profile):
            mine = _rows_of(cells(record.run), record, suite)
            base = _rows_of(cells(none.run), none, suite)
            if mine is None or base is None:
                continue
            found = paired_metrics(mine, base, (metric,), seed=seed)
            if metric in found:
                e = found[metric]
                paired[key] = [e.value, e.low, e.high, e.n]
        out.append(replace(record, paired=paired))
    return out
