"""The benchmark registry: names -> :class:`Benchmark`, plus :func:`load_items` for specs.

:data:`BENCHMARKS` is a :class:`cmrm.base.registry.Registry`. Besides the upstream benchmarks (and
their ``aliases``), two kinds of names are registered here:

- ``jsonl``: the generic local format of :func:`cmrm.data.items.read_jsonl` (``root`` is the file);
- ``organism:<suite>``: the model organism's synthetic suites, served by the provider
  ``cmrm.organisms.toy.provider:benchmarks`` (imported on first use of an ``organism:`` name), so the
  list of suites lives only in the organism package;
- ``organism-smol:<suite>``: the SmolLM2 organism's suites (real prompts), served likewise by
  ``cmrm.organisms.smol.provider:benchmarks``.

A new benchmark is one :func:`register_benchmark` call; a new family of built-in suites one
``BENCHMARKS.add_provider("prefix:", "package.module:function")``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from cmrm.base.errors import DataError, UnknownNameError
from cmrm.base.registry import Registry, instance_of
from cmrm.data.items import Item, read_jsonl

from . import mmsafety, overrefusal, safety, utility
from .benchmark import Benchmark
from .splits import SPLITS


def _read_jsonl_file(root: Path | None, _opts: Mapping[str, Any], _limit: int | None) -> list[Item]:
    if root is None or not root.is_file():
        raise DataError(
            f"the jsonl benchmark reads one file; pass its path as root, got {root}. "
            'Each line: {"id", "prompt", "image" (path relative to the file, or null), ...}'
        )
    return list(read_jsonl(root))


JSONL = Benchmark(
    name="jsonl",
    description="generic local JSON Lines file of items (root = the file; see cmrm.data.items)",
    source="local file",
    licence="yours",
    kind="custom",
    layout="one .jsonl file; image paths relative to its folder",
    reader=_read_jsonl_file,
    no_download="it is a local format.",
)

_DEFAULT_JUDGES = {"scienceqa": "mc", "llava-bench-coco": "reference", "mm-vet": "reference"}
"""Judges of the utility benchmarks, declared on their entries at registration (a loader module
that sets ``default_judge=`` itself wins)."""

BENCHMARKS: Registry[Benchmark] = Registry("benchmark", check=instance_of(Benchmark))


def register_benchmark(bench: Benchmark, registry: Registry[Benchmark] = BENCHMARKS) -> None:
    """Register ``bench`` under its name and its ``aliases`` (with its default judge)."""
    if bench.default_judge == "refusal" and bench.name in _DEFAULT_JUDGES:
        bench = replace(bench, default_judge=_DEFAULT_JUDGES[bench.name])
    registry.register(bench.name, bench, description=bench.description, aliases=bench.aliases)


for _bench in (
    safety.BENCHMARKS + mmsafety.BENCHMARKS + overrefusal.BENCHMARKS + utility.BENCHMARKS + (JSONL,)
):
    register_benchmark(_bench)
BENCHMARKS.add_provider(
    "organism:",
    "cmrm.organisms.toy.provider:benchmarks",
    description="model organism suite (synthetic, built in)",
)
BENCHMARKS.add_provider(
    "organism-smol:",
    "cmrm.organisms.smol.provider:benchmarks",
    description="SmolLM2 organism suite (real prompts, built in)",
)


def _lookup(name: str) -> Benchmark | None:
    """The benchmark called ``name`` or an alias of it, in any case; None if unknown."""
    if name in BENCHMARKS:
        return BENCHMARKS.get(name)
    lowered = name.lower()
    for entry in BENCHMARKS.entries(providers=False):
        if lowered in (entry.name.lower(), *(alias.lower() for alias in entry.aliases)):
            return BENCHMARKS.get(entry.name)
    return None


def _unknown(name: str) -> UnknownNameError:
    """An unknown benchmark: did-you-mean over names and aliases (naming an alias's benchmark),
    and the names listed."""
    entries = BENCHMARKS.entries()
    choices = {e.name: e.name for e in entries}
    choices.update({alias: e.name for e in entries for alias in e.aliases})
    close = difflib.get_close_matches(name, list(choices), n=1)
    hint = ""
    if close:
        owner = choices[close[0]]
        hint = f" Did you mean {close[0]!r}" + (f" ({owner})?" if owner != close[0] else "?")
    return UnknownNameError(
        f"unknown benchmark {name!r}.{hint} Known: {', '.join(sorted(choices[c] for c in set(choices.values())))} "
        "(`cmrm bench list` shows aliases), or a path to a .jsonl file."
    )


def list_benchmarks() -> list[Benchmark]:
    """Every registered benchmark, in registration order (the organism's suites last)."""
    return BENCHMARKS.values()


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name`` (or an alias of it, any case); UnknownNameError with a
    did-you-mean suggestion otherwise."""
    found = _lookup(name)
    if found is None:
        raise _unknown(name)
    return found


def parse_spec(spec: str) -> tuple[Benchmark, Path | None, str | None]:
    """``name``, ``name:split``, ``file.jsonl`` or ``file.jsonl:split`` -> (benchmark, file, split).

    Raises:
        UnknownNameError: neither a benchmark (name or alias) nor a ``.jsonl``/existing file.
        DataError: a known benchmark or file with an unknown split, or a folder.
    """
    base, split = spec, None
    if _lookup(spec) is None and ":" in spec:
        head, _, tail = spec.rpartition(":")
        if tail in SPLITS:
            base, split = head, tail
        elif _lookup(head) is not None or head.endswith(".jsonl") or Path(head).is_file():
            raise DataError(
                f"unknown split {tail!r} in {spec!r}; the splits are {', '.join(SPLITS)} "
                f"(e.g. {head}:{SPLITS[-1]}), or none for all items"
            )
    found = _lookup(base)
    if found is not None:
        return found, None, split
    path = Path(base).expanduser()
    if base.endswith(".jsonl") or path.is_file():
        return JSONL, path, split
    if path.is_dir():
        files = sorted(p.name for p in path.glob("*.jsonl"))
        raise DataError(
            f"{base} is a folder; pass the .jsonl file in it"
            + (f" (e.g. {path / files[0]})" if files else " (it holds none)")
            + " or a benchmark name"
        )
    raise _unknown(base)


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
        if not path.is_file():
            raise DataError(
                f"data file {path} does not exist; pass an existing JSONL file of items (one "
                'object per line: {"id", "prompt", "image"}) or a benchmark name (cmrm bench list)'
            )
        root = path
    return benchmark.load(root, split=spec_split or split, limit=limit, seed=seed, **options)
