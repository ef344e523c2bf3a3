"""Paired timing rounds and bootstrap intervals, shared by the benchmarks.

A shared machine drifts by several per cent within minutes, so absolute times of variants taken
minutes apart cannot be compared. Instead every **round** runs the baseline and every variant back
to back, in an order shuffled (with a seed) each round or alternating (the given order on even
rounds, reversed on odd ones), and a variant's figure is the per-round ratio of its time to that
round's baseline time. The report is the median of those ratios and a
percentile bootstrap interval of the median (95 % by default).

Each call is timed on two clocks: wall time and the process's CPU time. With one torch thread the
CPU time is the work the call did, without the time it waited for a core that another job held;
on a shared machine it is the steadier of the two (both are recorded, the benchmarks say which
they report).
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


@dataclass(frozen=True)
class Timing:
    """Wall seconds and process CPU seconds of one call."""

    wall: float
    cpu: float


def timed_both(run: Callable[[], object], sync: Callable[[], None] | None = None) -> Timing:
    """Wall and process CPU seconds of one call of ``run`` (``sync`` before and after)."""
    if sync is not None:
        sync()
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    if sync is not None:
        sync()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def timed(run: Callable[[], object], sync: Callable[[], None] | None = None) -> float:
    """Wall seconds of one call of ``run`` (``sync`` before and after, e.g. CUDA)."""
    return timed_both(run, sync).wall


ORDERS = ("shuffle", "alternate")


def round_order(names: list[str], r: int, *, seed: int = 0, order: str = "shuffle") -> list[str]:
    """The order of round ``r``: shuffled with ``random.Random(seed + r)``, or alternating."""
    if order == "alternate":
        return names if r % 2 == 0 else names[::-1]
    shuffled = list(names)
    random.Random(seed + r).shuffle(shuffled)
    return shuffled


@dataclass(frozen=True)
class Rounds:
    """Per variant, the wall and the CPU seconds of each round (round ``r`` at index ``r``)."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]

    def clock(self, name: str) -> dict[str, list[float]]:
        if name not in ("wall", "cpu"):
            raise ValueError(f"clock must be wall or cpu, got {name!r}")
        return self.wall if name == "wall" else self.cpu


def paired_rounds_both(
    variants: dict[str, Callable[[], object]],
    rounds: int,
    *,
    seed: int = 0,
    sync: Callable[[], None] | None = None,
    progress: Callable[[int, float], None] | None = None,
    order: str = "shuffle",
) -> Rounds:
    """Wall and CPU times of every variant in each of ``rounds`` rounds, in an order shuffled
    per round with ``random.Random(seed + r)`` (``order="shuffle"``) or alternating
    (``order="alternate"``: the variants' order on even rounds, reversed on odd ones);
    ``progress(r, seconds)`` after each round."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        names = round_order(list(variants), r, seed=seed, order=order)
        start = time.perf_counter()
        for name in names:
            timing = timed_both(variants[name], sync)
            wall[name].append(timing.wall)
            cpu[name].append(timing.cpu)
        if progress is not None:
            progress(r, time.perf_counter() - start)
    return Rounds(wall, cpu)


def paired_rounds(
    variants: dict[str, Callable[[], object]],
    rounds: int,
    *,
    seed: int = 0,
    sync: Callable[[], None] | None = None,
    progress: Callable[[int, float], None] | None = None,
    order: str = "shuffle",
) -> dict[str, list[float]]:
    """Wall times of every variant in each round (see :func:`paired_rounds_both`)."""
    return paired_rounds_both(
        variants, rounds, seed=seed, sync=sync, progress=progress, order=order
    ).wall


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
