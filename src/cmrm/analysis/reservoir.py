"""A bounded, seeded sample of rows that picks the same queries in every variant.

Each row carries a query id. Its priority is a hash of ``(seed, id)`` (SplitMix64), and the
reservoir keeps the ``capacity`` rows of lowest priority seen so far ("bottom-k" sampling). So:

- the kept set is a uniform random sample of the ids seen, whatever the order or batching;
- the same ids are kept in every variant that has them, so the text and image samples of a layer
  are paired (the PCA plot shows the same queries; the probe's folds can be grouped by query);
- memory is ``capacity x layers x hidden`` values, fixed when the first batch arrives.

Rows are stored relative to a per-layer reference vector (the first batch's mean, shared by all
variants through :class:`GapAccumulator`): translation changes neither PCA nor a standardised
probe, and it removes the large constant components of LLM hidden states, so float16 storage keeps
the differences that matter.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def priorities(ids: NDArray[np.int64], seed: int) -> NDArray[np.uint64]:
    """SplitMix64 hash of each id mixed with ``seed``: deterministic, uniform-looking uint64s."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed & 0xFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))) & _MASK


class Reservoir:
    """Bottom-k sample of ``[n_layers, hidden]`` rows keyed by integer query ids."""

    def __init__(self, capacity: int, seed: int, dtype: DTypeLike = np.float16) -> None:
        self.capacity = capacity
        self.seed = seed
        self.dtype = np.dtype(dtype)
        self.size = 0
        self.ids = np.zeros(capacity, dtype=np.int64)
        self._priority = np.zeros(capacity, dtype=np.uint64)
        self._rows: NDArray[np.floating] | None = None

    @property
    def nbytes(self) -> int:
        arrays = [self.ids, self._priority] + ([self._rows] if self._rows is not None else [])
        return sum(a.nbytes for a in arrays)

    def offer(self, ids: NDArray[np.int64], states: NDArray[np.floating]) -> None:
        """Consider rows ``states[:, j]`` (``[n_layers, B, hidden]``, already re-referenced)."""
        if self.capacity == 0 or len(ids) == 0:
            return
        if self._rows is None:
            layers, _, hidden = states.shape
            self._rows = np.zeros((layers, self.capacity, hidden), dtype=self.dtype)
        m = self.size
        candidates = np.concatenate([self._priority[:m], priorities(ids, self.seed)])
        order = np.argsort(candidates, kind="stable")[: self.capacity]
        kept_old = order[order < m]
        new = order[order >= m] - m
        # slots not held by kept old rows: evicted ones and never-used ones, lowest first
        slots = np.setdiff1d(np.arange(self.capacity), kept_old)[: len(new)]
        self._rows[:, slots] = states[:, new].astype(self.dtype)
        self.ids[slots] = ids[new]
        self._priority[slots] = candidates[m:][new]
        self.size = len(kept_old) + len(new)

    def rows(self, layer_pos: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """``(ids, states)`` kept at one layer position, sorted by id (float32)."""
        if self._rows is None or self.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        order = np.argsort(self.ids[: self.size], kind="stable")
        return self.ids[order], self._rows[layer_pos, order].astype(np.float32)
