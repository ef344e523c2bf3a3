"""Paired timing rounds and bootstrap intervals, shared by the benchmarks.

A shared machine drifts by several per cent within minutes, so absolute times of variants taken
minutes apart cannot be compared. Instead every **round** runs the baseline and every variant back
to back, in an order shuffled (with a seed) each round, and a variant's figure is the per-round
ratio of its time to that round's baseline time. The report is the median of those ratios and a
percentile bootstrap interval of the median (95 % by default).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Median of per-round values and a bootstrap interval of that median."""

    median: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.median:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap(
    values: Sequence[float], *, resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> Summary:
    """The median of ``values`` and a percentile bootstrap interval of the median."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no values to summarise")
    rng = np.random.default_rng(seed)
    draws = rng.choice(data, size=(resamples, data.size), replace=True)
    medians = np.median(draws, axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(medians, [tail, 1.0 - tail])
    return Summary(float(np.median(data)), float(low), float(high), int(data.size))


def timed(run: Callable[[], object], sync: Callable[[], None] | None = None) -> float:
    """Wall seconds of one call of ``run`` (``sync`` before and after, e.g. CUDA)."""
    if sync is not None:
        sync()
    start = time.perf_counter()
    run()
    if sync is not None:
        sync()
    return time.perf_counter() - start


def paired_rounds(
    variants: dict[str, Callable[[], object]],
    rounds: int,
    *,
    seed: int = 0,
    sync: Callable[[], None] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, list[float]]:
    """Times of every variant in each of ``rounds`` rounds, in a shuffled order per round.

    Round ``r``'s order is shuffled with ``random.Random(seed + r)``; ``progress(r, seconds)`` is
    called after each round."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        order = list(variants)
        random.Random(seed + r).shuffle(order)
        start = time.perf_counter()
        for name in order:
            times[name].append(timed(variants[name], sync))
        if progress is not None:
            progress(r, time.perf_counter() - start)
    return times


def ratios(times: dict[str, list[float]], baseline: str) -> dict[str, list[float]]:
    """Per-round ratio of every variant's time to the baseline's time in the same round."""
    base = times[baseline]
    return {
        name: [t / b for t, b in zip(values, base, strict=True)]
        for name, values in times.items()
        if name != baseline
    }


def median_seconds(times: Sequence[float]) -> float:
    return statistics.median(times)
