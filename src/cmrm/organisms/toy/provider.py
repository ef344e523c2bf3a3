"""The toy organism's suites as benchmarks: the provider of the ``organism:`` names in
:data:`cmrm.data.registry.BENCHMARKS`.

Reads :mod:`.catalog` (the specs) at once and imports :mod:`.suites` (the builders: numpy, PIL)
only when items are read; :mod:`.suites` imports the catalog, never this module, so the two form
no cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalog import CATALOG

if TYPE_CHECKING:
    from cmrm.data.benchmark import Benchmark
    from cmrm.data.items import Item


def _reader(name: str) -> Callable[[Path | None, Mapping[str, Any], int | None], list[Item]]:
    def read(_root: Path | None, _options: Mapping[str, Any], limit: int | None) -> list[Item]:
        builders = importlib.import_module("cmrm.organisms.toy.suites")  # numpy, PIL: only on read
        return list(builders.load_suite(name, limit=limit))

    return read


def benchmarks() -> dict[str, Benchmark]:
    """Every suite as a :class:`~cmrm.data.benchmark.Benchmark` judged by ``organism``: the
    provider of the ``organism:`` names in :data:`cmrm.data.registry.BENCHMARKS`."""
    from cmrm.data.benchmark import Benchmark

    return {
        name: Benchmark(
            name=name,
            description=suite.description,
            source="built in (cmrm.organisms.toy.suites)",
            licence="MIT (part of cmrm)",
            kind="custom",
            layout="none (built in)",
            reader=_reader(name),
            uses_root=False,
            default_judge="organism",
        )
        for name, suite in CATALOG.items()
    }
