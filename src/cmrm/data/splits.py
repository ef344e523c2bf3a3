"""Deterministic anchor/eval splits: the paper calibrates on 20 % of a benchmark, evaluates on 80 %.

An item's side is decided by hashing ``(seed, item id)`` alone, so the two sides are disjoint by
construction, cover every item, do not depend on item order, and stay put when items are added.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import Literal

from cmrm.base.errors import DataError
from cmrm.data.items import Item

Split = Literal["anchor", "eval"]
SPLITS: tuple[str, ...] = ("anchor", "eval")
DEFAULT_ANCHOR_FRACTION = 0.2


def anchor_score(item_id: str, seed: int = 0) -> float:
    """A uniform number in [0, 1) fixed by ``(seed, item_id)``; below the fraction means anchor."""
    digest = hashlib.sha256(f"{seed}\x00{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def check_split(split: str | None, anchor_fraction: float) -> None:
    """Raise DataError for an unknown split name or a fraction outside (0, 1)."""
    if split is not None and split not in SPLITS:
        raise DataError(
            f"unknown split {split!r}; expected one of {SPLITS} (or none for all items)"
        )
    if not (math.isfinite(anchor_fraction) and 0.0 < anchor_fraction < 1.0):
        raise DataError(f"anchor_fraction must be in (0, 1), got {anchor_fraction!r}")


def split_items(
    items: Iterable[Item],
    split: str,
    *,
    anchor_fraction: float = DEFAULT_ANCHOR_FRACTION,
    seed: int = 0,
) -> list[Item]:
    """The items on one side of the split, in their original order."""
    check_split(split, anchor_fraction)
    want_anchor = split == "anchor"
    return [i for i in items if (anchor_score(i.id, seed) < anchor_fraction) == want_anchor]
