"""Pairing text-only benchmarks with images, so they can probe the image-induced shift.

``pair`` option values:

- ``null`` (default): no image; ``meta["pair"] = "null"`` asks the caller to attach a null image
  (blank/noise/mean, chosen where the experiment is configured);
- ``none``: text only, no image at all (``meta["pair"] = "none"``);
- ``folder:DIR``: a deterministic round-robin over the sorted image files in ``DIR``
  (item ``i`` gets file ``i mod n``); the file is recorded in ``meta["pair_image"]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from cmrm.base.errors import DataError
from cmrm.data.items import Item

from .benchmark import Option
from .formats import image_files

PAIR_OPTION = Option(
    "null", "image pairing: null (caller attaches a null image), none, or folder:DIR"
)


def pair_items(items: Sequence[Item], pair: str) -> list[Item]:
    """Attach images (or the null-image marker) to text-only items according to ``pair``."""
    if pair in ("null", "none"):
        return [dataclasses.replace(i, image=None, meta={**i.meta, "pair": pair}) for i in items]
    if pair.startswith("folder:") and len(pair) > len("folder:"):
        files = image_files(Path(pair[len("folder:") :]).expanduser())
        return [
            dataclasses.replace(
                item,
                image=files[n % len(files)],
                meta={**item.meta, "pair": "folder", "pair_image": files[n % len(files)].name},
            )
            for n, item in enumerate(items)
        ]
    raise DataError(f"option 'pair' must be 'null', 'none' or 'folder:DIR', got {pair!r}")
