"""Partial sums of per-sample differences: what one rank accumulates over its share of the
anchors, how shares combine, and how they are reduced across ranks.

An estimator splits into three steps so that any number of processes give the same shift:

1. **accumulate** — each rank runs the batches :func:`shard_batches` gives it and adds each
   batch's differences ``d`` (``[layers, rows, hidden]``) to a :class:`Partial`: the running sum
   (float64, O(layers x hidden)), the row count, and, only for estimators that need the rows
   themselves (``pc1``), the rows with their anchor indices;
2. **reduce** — :func:`reduce_partial` makes every rank hold the whole set's partial: sums and
   counts by all-reduce (memory stays O(layers x hidden) per rank), kept rows by all-gather, put
   back in anchor order. It equals :func:`combine` over all ranks' partials;
3. **finish** — the estimator turns the complete partial into vectors (``mean``: sum / count).

Batches are strided across ranks whole (batch ``b`` goes to rank ``b % world``) so that every
batch holds the same anchors as in a single-process run: the per-sample differences are then the
same numbers, and a sequential estimator (steer layers < l, measure layer l) can reuse all three
steps once per layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..base import distributed
from ..base.distributed import SINGLE, World


@dataclass(frozen=True)
class Partial:
    """Differences accumulated over some anchors."""

    total: Tensor
    """``[layers, hidden]`` float64 sum of the differences."""
    count: int = 0
    pieces: tuple[tuple[int, Tensor], ...] | None = field(default=None, repr=False)
    """Kept differences (None when not kept): ``(first anchor index, [layers, n, hidden])``."""

    @classmethod
    def empty(cls, layers: int, hidden: int, *, keep: bool = False) -> Partial:
        return cls(torch.zeros(layers, hidden, dtype=torch.float64), 0, () if keep else None)

    @property
    def keeps(self) -> bool:
        return self.pieces is not None

    def add(self, start: int, diffs: Tensor) -> Partial:
        """This partial plus one batch of differences for anchors ``start, start + 1, ...``."""
        total = self.total + diffs.double().sum(dim=1)
        count = self.count + int(diffs.shape[1])
        if self.pieces is None:
            return Partial(total, count)
        return Partial(total, count, (*self.pieces, (start, diffs.float().cpu())))

    def mean(self) -> Tensor:
        """``[layers, hidden]`` float32 mean difference."""
        return (self.total / max(self.count, 1)).float()

    def ordered_rows(self) -> Tensor:
        """The kept rows in anchor order: ``[layers, n, hidden]`` float32."""
        if self.pieces is None:
            raise ValueError("this partial kept no rows (accumulate with keep=True)")
        if not self.pieces:
            return self.total.new_zeros(self.total.shape[0], 0, self.total.shape[1]).float()
        return torch.cat([rows for _, rows in sorted(self.pieces, key=lambda p: p[0])], dim=1)


def combine(parts: Sequence[Partial]) -> Partial:
    """The partial of the union of disjoint anchor shares."""
    if not parts:
        raise ValueError("combine needs at least one partial")
    total = torch.stack([p.total for p in parts]).sum(dim=0)
    count = sum(p.count for p in parts)
    if not all(p.keeps for p in parts):
        return Partial(total, count)
    return Partial(total, count, tuple(piece for p in parts for piece in p.pieces or ()))


def reduce_partial(part: Partial, world: World = SINGLE) -> Partial:
    """Every rank's partial combined, on every rank (``part`` itself in a world of one)."""
    if not world.sharded:
        return part
    total = distributed.all_sum(part.total)
    count = int(distributed.all_sum(torch.tensor([part.count], dtype=torch.int64)).item())
    if part.pieces is None:
        return Partial(total, count)
    rows = part.ordered_rows()
    index = torch.cat(
        [torch.arange(s, s + int(r.shape[1]), dtype=torch.int64) for s, r in part.pieces]
        or [torch.zeros(0, dtype=torch.int64)]
    )
    index = torch.sort(index).values
    rows, index = distributed.gather_rows(rows, index)
    return Partial(total, count, ((0, rows[:, torch.argsort(index)]),))


def shard_batches(n_items: int, batch_size: int, world: World = SINGLE) -> list[int]:
    """Start indices of the batches this rank runs: batch ``b`` covers items
    ``[b * batch_size, (b + 1) * batch_size)`` and belongs to rank ``b % world.size``."""
    starts = range(0, n_items, batch_size)
    return [start for b, start in enumerate(starts) if world.owns(b)]
