"""What a run checks before it writes anything, and how a failed start leaves nothing behind.

:func:`prepare` validates everything that can be validated without the model — the run folder,
the device, the dtype, the layer spec, every benchmark and the anchor set (loaded, non-empty,
unique ids, prompts present, image files present, no anchor leakage), the judge names and the
given shift file — before ``config.json`` exists. :func:`claim_run_dir` covers what can only fail
later (the model's layer count, a prompt longer than its context, a shift for another model, a
crash during calibration): when a run that had no ``config.json`` fails before its first row, it
removes the files that start created, so the corrected command is not refused as "a different
configuration".
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..calibration.shift import ShiftVectors
from ..data.items import Item
from ..models.checks import check_items, check_layers_syntax, check_output_dir, resolve_device
from .config import EvalConfig
from .sources import LoadItemsFn, check_anchor_leak, check_tuning_leak, load_benchmark
from .store import run_lock

logger = logging.getLogger(__name__)

STORES = ("generations.jsonl", "judgments.jsonl")


@dataclass(frozen=True)
class Prepared:
    """The checked inputs of a run."""

    items: dict[str, list[Item]]
    anchors: list[Item]
    shift: ShiftVectors | None
    """The given ``--shift`` (loaded and checked), when the run uses one (method ``dataset``, or
    the safety axes of operators ``project``/``gated``)."""
    device: str | None
    """``config.device`` resolved for this machine (``auto`` -> ``cuda`` or ``cpu``)."""


def judge_names() -> list[str]:
    """Every judge name the default judge factory knows (the judge registry's)."""
    from ..judges import list_judges

    return [name for name, _ in list_judges()]


def check_judges(config: EvalConfig, known: Collection[str] | None) -> None:
    """Every judge this run uses is known (``known=None``: names cannot be checked up front,
    as with an injected judge factory).

    Raises:
        UnknownNameError: with a did-you-mean suggestion.
    """
    if known is None:
        return
    from ..base.errors import unknown_name

    for bench in config.benchmarks:
        name = config.judge_for(bench)
        if name not in known:
            raise unknown_name("judge", name, list(known))


def prepare(
    config: EvalConfig,
    run_dir: Path,
    load_items_fn: LoadItemsFn,
    known_judges: Collection[str] | None,
) -> Prepared:
    """Check and load every input of a run; nothing is written.

    Raises:
        ConfigError, DataError, UnknownNameError, IncompatibleShiftError: the first bad input.
    """
    from ..models.loading import parse_dtype

    check_output_dir(run_dir, "run folder")
    device = resolve_device(config.device, config.model)
    parse_dtype(config.dtype)
    check_layers_syntax(config.layers)
    check_judges(config, known_judges)
    items: dict[str, list[Item]] = {}
    for bench in config.benchmarks:
        items[bench] = load_benchmark(config, bench, load_items_fn, limit=config.limit)
        check_items(items[bench], f"benchmark {bench!r}")
    anchors: list[Item] = []
    if config.anchors is not None:
        anchors = load_benchmark(config, config.anchors, load_items_fn, limit=None)
        check_items(anchors, f"anchor set {config.anchors!r}")
        for bench, its in items.items():
            check_anchor_leak(config.anchors, anchors, bench, its)
    shift = None
    if config.needs_shift and config.shift is not None:
        shift = ShiftVectors.load(config.shift)
        for bench, its in items.items():
            check_tuning_leak(shift.meta.extra, bench, its)
    return Prepared(items, anchors, shift, device)


def _has_rows(run_dir: Path) -> bool:
    for name in STORES:
        path = run_dir / name
        if path.is_file() and path.read_bytes().strip():
            return True
    return False


@contextlib.contextmanager
def claim_run_dir(run_dir: Path) -> Iterator[None]:
    """Create ``run_dir`` if needed and hold its lock for the body. If the body fails on a run
    that had no ``config.json`` and no row was written, remove what this start created
    (``config.json``, a calibrated ``shift/``, empty row files, the lock file, the folder itself
    if it was new), so that a corrected command starts afresh.

    Raises:
        ConfigError: another process holds the run (nothing is removed then).
    """
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in run_dir.iterdir()}
    with run_lock(run_dir):
        try:
            yield
        except Exception:
            _undo(run_dir, "config.json" in before, before, created)
            raise


def _undo(run_dir: Path, had_config: bool, before: set[str], created: bool) -> None:
    if had_config or _has_rows(run_dir):
        return
    removed = []
    for path in sorted(run_dir.iterdir()):
        if path.name in before:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path.name)
    if created:
        with contextlib.suppress(OSError):
            run_dir.rmdir()
    logger.info("failed start: removed %s from %s", removed or "nothing", run_dir)
