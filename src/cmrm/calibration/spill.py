"""Where sequential calibration keeps each anchor batch's carried states between layers.

Sequential calibration (:mod:`cmrm.calibration.sequential`) carries every anchor batch's states
(anchors x tokens x hidden) and the arguments its decoder layers are called with from one layer
to the next. :class:`CarryStore` holds them in memory (on their device) while their total stays
under a budget, and beyond it writes each batch to a temporary folder as a safetensors file and
reads it back when the batch's turn at the next layer comes: memory then holds one batch at a
time, whatever the number of anchors (on a GPU: the budget bounds the device memory they take).

A batch's value is any nesting of tuples, lists and dicts whose leaves are tensors or small
plain values; the tensors go to the file (one copy of a tensor that appears several times, as
the position embeddings every layer receives), the plain leaves stay in memory. What is read
back is bit-identical to what was written, on the device it came from.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

logger = logging.getLogger(__name__)

DEFAULT_BUDGET = 1 << 30
"""Bytes of carried states kept in memory before sequential calibration spills to disk (1 GiB)."""


@dataclass(frozen=True)
class _Ref:
    """Where a tensor leaf went: its key in the batch's file, and its device."""

    key: str
    device: str


def tensor_bytes(value: Any) -> int:
    """Bytes of the distinct tensors in a nesting of tuples, lists and dicts."""
    seen: dict[int, int] = {}

    def walk(node: Any) -> None:
        if isinstance(node, Tensor):
            seen[id(node)] = node.numel() * node.element_size()
        elif isinstance(node, (tuple, list)):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for item in node.values():
                walk(item)

    walk(value)
    return sum(seen.values())


def _pack(value: Any, tensors: dict[str, Tensor], keys: dict[int, _Ref]) -> Any:
    if isinstance(value, Tensor):
        if id(value) not in keys:
            key = f"t{len(tensors)}"
            tensors[key] = value.detach().to("cpu").contiguous().clone()
            keys[id(value)] = _Ref(key, str(value.device))
        return keys[id(value)]
    if isinstance(value, tuple):
        return tuple(_pack(v, tensors, keys) for v in value)
    if isinstance(value, list):
        return [_pack(v, tensors, keys) for v in value]
    if isinstance(value, dict):
        return {k: _pack(v, tensors, keys) for k, v in value.items()}
    return value


def _unpack(value: Any, tensors: dict[str, Tensor], loaded: dict[str, Tensor]) -> Any:
    if isinstance(value, _Ref):
        if value.key not in loaded:
            loaded[value.key] = tensors[value.key].to(torch.device(value.device))
        return loaded[value.key]
    if isinstance(value, tuple):
        return tuple(_unpack(v, tensors, loaded) for v in value)
    if isinstance(value, list):
        return [_unpack(v, tensors, loaded) for v in value]
    if isinstance(value, dict):
        return {k: _unpack(v, tensors, loaded) for k, v in value.items()}
    return value


class CarryStore:
    """Per-batch values kept in memory, or on disk once :meth:`decide` says they do not fit.

    Use as a context manager: the temporary folder (if any) is removed on exit, also on errors.
    """

    def __init__(self, budget: int | None = DEFAULT_BUDGET, folder: Path | None = None) -> None:
        self.budget = budget
        self.parent = folder
        self._memory: dict[int, Any] = {}
        self._skeletons: dict[int, Any] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def spilled(self) -> bool:
        return self._tmp is not None

    def decide(self, per_batch: int, batches: int) -> None:
        """Spill when ``batches`` values of ``per_batch`` bytes would exceed the budget."""
        if self.budget is None or per_batch * batches <= self.budget or self.spilled:
            return
        self._tmp = tempfile.TemporaryDirectory(prefix="cmrm-carry-", dir=self.parent)
        logger.info(
            "sequential calibration: %.1f MiB of carried states exceed the %.1f MiB budget; "
            "kept on disk in %s, one batch in memory at a time",
            per_batch * batches / 2**20,
            self.budget / 2**20,
            self._tmp.name,
        )
        for slot in list(self._memory):
            self.put(slot, self._memory.pop(slot))

    def put(self, slot: int, value: Any) -> None:
        if self._tmp is None:
            self._memory[slot] = value
            return
        tensors: dict[str, Tensor] = {}
        self._skeletons[slot] = _pack(value, tensors, {})
        save_file(tensors, str(Path(self._tmp.name) / f"{slot}.safetensors"))

    def get(self, slot: int) -> Any:
        if self._tmp is None:
            return self._memory[slot]
        tensors = load_file(str(Path(self._tmp.name) / f"{slot}.safetensors"))
        return _unpack(self._skeletons[slot], tensors, {})

    def __enter__(self) -> CarryStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._memory.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
