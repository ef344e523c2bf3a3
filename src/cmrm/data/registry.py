"""The benchmark registry: names -> :class:`Benchmark`, plus :func:`load_items` for specs.

Besides the upstream benchmarks, two kinds of names are registered here:

- ``jsonl``: the generic local format of :func:`cmrm.items.read_jsonl` (``root`` is the file);
- ``organism:<suite>``: the model organism's synthetic suites, resolved lazily through
  ``cmrm.organism.suites.load_suite`` so that importing this module stays cheap;
- ``organism-smol:<suite>``: the SmolLM2 organism's suites, resolved lazily through
  ``cmrm.organism_smol.suites.load_suite`` (its ``benchmarks()`` lists the same names).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmrm.errors import DataError, unknown_name
from cmrm.items import Item, read_jsonl

from . import mmsafety, overrefusal, safety, utility
from .benchmark import Benchmark
from .splits import SPLITS

ORGANISM_SUITES = (
    "harmful-text",
    "harmful-image",
    "harmful-blank",
    "benign-text",
    "benign-image",
    "image-qa",
    "anchor",
)
_ORGANISM_MODULE = "cmrm.organism.suites"
SMOL_SUITES = (
    "harmful-text",
    "harmful-image",
    "benign-text",
    "benign-image",
    "image-qa",
    "anchor",
    "val-harmful-text",
    "val-harmful-image",
    "val-benign-text",
    "val-benign-image",
    "val-image-qa",
)
_SMOL_MODULE = "cmrm.organism_smol.suites"


def _read_jsonl_file(root: Path | None, _opts: Mapping[str, Any], _limit: int | None) -> list[Item]:
    if root is None or not root.is_file():
        raise DataError(
            f"the jsonl benchmark reads one file; pass its path as root, got {root}. "
            'Each line: {"id", "prompt", "image" (path relative to the file, or null), ...}'
        )
    return list(read_jsonl(root))


JSONL = Benchmark(
    name="jsonl",
    description="generic local JSON Lines file of items (root = the file; see cmrm.items)",
    source="local file",
    licence="yours",
    kind="custom",
    layout="one .jsonl file; image paths relative to its folder",
    reader=_read_jsonl_file,
    no_download="it is a local format.",
)


def _organism(
    suite: str, prefix: str = "organism", module_name: str = _ORGANISM_MODULE
) -> Benchmark:
    name = f"{prefix}:{suite}"

    def read(_root: Path | None, _opts: Mapping[str, Any], limit: int | None) -> list[Item]:
        module = importlib.import_module(module_name)
        return list(module.load_suite(name, limit=limit))

    return Benchmark(
        name=name,
        description=f"model organism suite {suite!r} (synthetic, built in)"
        if prefix == "organism"
        else f"SmolLM2 organism suite {suite!r} (built in)",
        source=f"built in ({module_name})",
        licence="MIT (part of cmrm)",
        kind="custom",
        layout="none (built in)",
        reader=read,
        uses_root=False,
    )


_ALL: tuple[Benchmark, ...] = (
    safety.BENCHMARKS
    + mmsafety.BENCHMARKS
    + overrefusal.BENCHMARKS
    + utility.BENCHMARKS
    + (JSONL,)
    + tuple(_organism(s) for s in ORGANISM_SUITES)
    + tuple(_organism(s, "organism-smol", _SMOL_MODULE) for s in SMOL_SUITES)
)
_REGISTRY: dict[str, Benchmark] = {b.name: b for b in _ALL}


def list_benchmarks() -> list[Benchmark]:
    """Every registered benchmark, in registration order."""
    return list(_REGISTRY.values())


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``; UnknownNameError with a did-you-mean suggestion otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name("benchmark", name, list(_REGISTRY)) from None


def parse_spec(spec: str) -> tuple[Benchmark, Path | None, str | None]:
    """``name``, ``name:split``, ``file.jsonl`` or ``file.jsonl:split`` -> (benchmark, file, split)."""
    base, split = spec, None
    if spec not in _REGISTRY and spec.rpartition(":")[2] in SPLITS:
        base, _, split = spec.rpartition(":")
    if base in _REGISTRY:
        return _REGISTRY[base], None, split
    if base.endswith(".jsonl") or Path(base).expanduser().is_file():
        return JSONL, Path(base).expanduser(), split
    raise unknown_name("benchmark", base, list(_REGISTRY))


def load_items(
    spec: str,
    *,
    root: str | Path | None = None,
    split: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    **options: Any,
) -> list[Item]:
    """Load a benchmark name, ``name:split``, or a generic ``.jsonl`` path (optionally ``:split``).

    Raises:
        UnknownNameError: ``spec`` is neither a registered name nor an existing/``.jsonl`` file.
        DataError: see :meth:`Benchmark.load`; also a split given both in ``spec`` and ``split``.
    """
    benchmark, path, spec_split = parse_spec(spec)
    if spec_split and split and spec_split != split:
        raise DataError(
            f"spec {spec!r} asks for split {spec_split!r} but split={split!r} was given"
        )
    if path is not None:
        if root is not None:
            raise DataError(f"spec {spec!r} is a file; do not also pass root={root!r}")
        root = path
    return benchmark.load(root, split=spec_split or split, limit=limit, seed=seed, **options)
