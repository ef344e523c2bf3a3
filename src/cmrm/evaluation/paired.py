"""Paired differences between two methods on the same items, with bootstrap intervals.

Two settings evaluated on the same items differ by much less noise than their two rates
suggest: most items get the same verdict under both, and only the items that change carry the
difference. :func:`paired_difference` takes each item's value of a metric under a trial and
under a reference (``none``, say), keeps the items measured under both, and bootstraps the mean
of the per-item differences (resampling items, seeded). The interval is that of the difference
itself — narrower than the difference of two independent intervals whenever the verdicts are
correlated, as they are between nearby settings.

Per-item values follow :mod:`cmrm.evaluation.metrics` exactly (the same rows count toward the
same metric), so the paired difference's point equals the difference of the two rates whenever
both were measured on the same items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import EvalConfig
from .metrics import Estimate, row_value
from .store import read_json, read_rows


def item_values(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, float]:
    """``{item id: value}`` of ``metric`` over the rows of one cell."""
    out = {}
    for row in rows:
        value = row_value(row, metric)
        if value is not None:
            out[str(row["id"])] = value
    return out


def paired_difference(
    trial: Mapping[str, float],
    reference: Mapping[str, float],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Mean of ``trial[i] - reference[i]`` over the items both measured, with a seeded
    percentile-bootstrap interval over items; all None when they share no item.

    Example:
        >>> paired_difference({"a": 1.0, "b": 1.0, "c": 0.0}, {"a": 1.0, "b": 0.0, "c": 0.0}).value
        0.3333333333333333
    """
    common = sorted(set(trial) & set(reference))
    if not common:
        return Estimate(None, None, None, 0)
    diffs = np.asarray([trial[i] - reference[i] for i in common], dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diffs), size=(resamples, len(diffs)))
    means = diffs[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Estimate(float(diffs.mean()), float(low), float(high), len(common))


def paired_metrics(
    rows: Sequence[Mapping[str, Any]],
    reference: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    *,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Per metric, the paired difference of one cell's rows to a reference cell's rows on the
    same items; metrics neither measured on a shared item are left out."""
    out = {}
    for metric in metrics:
        estimate = paired_difference(
            item_values(rows, metric), item_values(reference, metric), seed=seed
        )
        if estimate.value is not None:
            out[metric] = estimate
    return out


def run_cells(
    run_dir: str | Path,
) -> dict[tuple[str, str, float | None, str], list[dict[str, Any]]]:
    """The judged rows of a run folder by cell ``(benchmark, method, alpha, operator)``."""
    run_dir = Path(run_dir)
    config = EvalConfig.from_json(read_json(run_dir / "config.json")["config"])
    by_key = {c.key: c for c in config.cells}
    out: dict[tuple[str, str, float | None, str], list[dict[str, Any]]] = {
        (c.benchmark, c.method, c.alpha, c.operator): [] for c in config.cells
    }
    for row in read_rows(run_dir / "judgments.jsonl"):
        cell = by_key.get(str(row["cell"]))
        if cell is not None:
            out[(cell.benchmark, cell.method, cell.alpha, cell.operator)].append(row)
    return out
