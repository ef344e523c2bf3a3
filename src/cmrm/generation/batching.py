"""How one process cuts its work into batches: by prompt length, and with ``auto`` sizes that back
off on out-of-memory without losing a row.

- **Length order.** Rows are sorted (stably) by whether they have an image, then by the number of
  prompt tokens, before they are cut into batches, so a batch pads to a length close to its rows'
  own. Results always go back to the caller in the original order. Greedy decoding gives the same
  tokens in any batch (left padding with its attention mask; tested), so sorted batches change
  speed, not answers. Image tokens are counted per row only through ``has_image``: families whose
  image token count depends on the image size (dynamic resolution) are ordered by text alone.
- **``auto`` batch size.** On CUDA, the first batch tries :data:`CUDA_START` rows; an
  out-of-memory error halves the size and retries the same rows (nothing is kept from the failed
  try), down to 1. On CPU, ``auto`` is :data:`CPU_DEFAULT` (logged), as memory is rarely the limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch

from ..base.errors import CmrmError, ConfigError, DataError

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

AUTO = "auto"
CPU_DEFAULT = 8
"""What ``--batch-size auto`` means on a CPU."""
CUDA_START = 64
"""The first size ``--batch-size auto`` tries on CUDA (halved on every out-of-memory)."""

BatchSize = int | str
"""A positive int, or ``"auto"``."""


def parse_batch_size(value: str | int | None) -> BatchSize | None:
    """``"8"`` -> 8, ``"auto"`` -> ``"auto"``, None -> None.

    Raises:
        ConfigError: anything else.
    """
    if value is None or value == AUTO:
        return value
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if size < 1 or (isinstance(value, str) and value.strip() != str(size)):
        raise ConfigError(
            f"batch size must be a positive integer or 'auto', got {value!r}; "
            "e.g. --batch-size 8 or --batch-size auto"
        )
    return size


def check_batch_size(value: object) -> None:
    """Raise ConfigError unless ``value`` is a positive int or ``"auto"``."""
    if value == AUTO:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"batch_size must be a positive integer or 'auto', got {value!r}; "
            "e.g. --batch-size 8 or --batch-size auto"
        )


def on_cuda(device: str | torch.device | None) -> bool:
    """Whether work on ``device`` runs on a CUDA GPU (``auto``/None: if one is present)."""
    if device is None or str(device) == "auto":
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def resolve_batch_size(batch_size: BatchSize, device: str | torch.device | None = None) -> int:
    """A fixed size for work that cannot back off: an int stays, ``auto`` becomes
    :data:`CPU_DEFAULT` on a CPU (logged) or :data:`CUDA_START` on CUDA."""
    check_batch_size(batch_size)
    if batch_size != AUTO:
        return int(batch_size)
    size = CUDA_START if on_cuda(device) else CPU_DEFAULT
    logger.info("--batch-size auto: %d (%s)", size, "CUDA" if on_cuda(device) else "CPU default")
    return size


def length_key(vlm: Any) -> Callable[[Any], tuple[bool, int]]:
    """Sort key of an item: (has an image, prompt tokens); words when there is no tokenizer."""
    tokenizer = getattr(vlm, "tokenizer", None)

    def key(item: Any) -> tuple[bool, int]:
        prompt = str(item.prompt)
        if tokenizer is not None and callable(tokenizer):
            length = len(tokenizer(prompt)["input_ids"])
        else:
            length = len(prompt.split())
        return (bool(item.has_image), length)

    return key


def length_order(items: Sequence[T], key: Callable[[T], Any]) -> list[int]:
    """Indices of ``items`` sorted by ``key`` (stable: ties keep their original order)."""
    keys = [key(item) for item in items]
    return sorted(range(len(items)), key=keys.__getitem__)


def run_batches(
    items: Sequence[T],
    batch_size: BatchSize,
    run: Callable[[list[T], int], Sequence[R]],
    *,
    key: Callable[[T], Any] | None = None,
    device: str | torch.device | None = None,
) -> Iterator[tuple[list[T], list[R]]]:
    """Run ``run(batch, size)`` over ``items`` and yield each ``(batch, results)`` as it completes.

    Args:
        items: the work, in the order results would be reported without ``key``.
        batch_size: a positive int, or ``auto`` (see the module docstring).
        run: does one batch; returns one result per row.
        key: sort the rows by this before batching (None keeps the order).
        device: where ``run`` computes (decides what ``auto`` means).

    Raises:
        CmrmError: out of memory with a fixed size, or with ``auto`` at size 1.
        DataError: ``run`` returned the wrong number of results.
    """
    order = length_order(items, key) if key is not None else list(range(len(items)))
    adaptive = batch_size == AUTO and on_cuda(device)
    size = resolve_batch_size(batch_size, device)
    start = 0
    while start < len(order):
        batch = [items[i] for i in order[start : start + size]]
        try:
            results = list(run(batch, size))
        except torch.OutOfMemoryError as err:
            _free()
            if not adaptive or size == 1:
                raise CmrmError(
                    f"out of memory with batch size {size} ({err}); "
                    + (
                        "the model does not fit even one row: use a smaller dtype or "
                        "--device-map auto with --max-memory"
                        if size == 1
                        else "pass a smaller --batch-size, or --batch-size auto to back off"
                    )
                ) from err
            size //= 2
            logger.warning("out of memory: retrying these rows with batch size %d", size)
            continue
        if len(results) != len(batch):
            raise DataError(f"a batch of {len(batch)} rows returned {len(results)} results")
        yield batch, results
        start += len(batch)


def _free() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
