"""Run an evaluation grid: generate every cell, judge every generation, summarise; resumable.

Order of work: (1) check or write ``config.json``; (2) load every benchmark (and the anchors);
(3) calibrate or load the dataset-level shift; (4) generate, cell by cell, in batches, each
batch's rows appended only after the batch completes; (5) release the model, then judge every
generation not judged yet; (6) recompute ``summary.json`` from ``judgments.jsonl``. Generation
and judging are separate passes so that a VLM and a judge model never need memory at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..base.atomic import write_json_atomic
from ..base.distributed import SINGLE, World
from ..base.errors import DataError
from ..calibration.estimate import calibrate
from ..calibration.shift import ShiftVectors
from ..data.images import NullImage
from ..data.items import Item
from ..generation.batching import length_key, resolve_batch_size, run_batches
from ..generation.generate import GenerationOptions
from ..generation.methods import Method, generate_method
from .config import EvalConfig, check_config
from .metrics import Summary, summarise
from .model import RunModel, method_for
from .preflight import judge_names, prepare
from .shard import Shard
from .sources import (
    GetJudgeFn,
    LoadItemsFn,
    build_judges,
    default_get_judge,
    default_load_items,
)
from .store import read_json, read_rows, row_key

logger = logging.getLogger(__name__)

GenerateFn = Callable[..., list[str]]
"""``generate_method(vlm, items, method, options, *, batch_size, show_progress) -> texts``."""
CalibrateFn = Callable[..., ShiftVectors]
ROW_KEYS = ("cell", "benchmark", "method", "alpha", "operator", "id", "item")
"""What a judgment row copies from its generation row."""


def _shift(
    config: EvalConfig,
    run_dir: Path,
    model: RunModel,
    anchors: Sequence[Item],
    calibrate_fn: CalibrateFn,
    show_progress: bool,
    shard: Shard,
) -> ShiftVectors | None:
    if not config.needs_shift:
        return None
    if model.prepared.shift is not None:
        return model.prepared.shift
    saved = run_dir / "shift"
    if shard.agree((saved / "shift.json").exists()):
        logger.info("reusing the shift calibrated earlier in %s", saved)
        return ShiftVectors.load(saved)
    shift = calibrate_fn(
        model.get(),
        list(anchors),
        null=NullImage.parse(config.null),
        estimator=config.estimator,
        layers=config.layers,
        contrast=config.contrast,
        sequential=config.sequential,
        calibration_alpha=config.calibration_alpha,
        positions=config.positions,
        batch_size=resolve_batch_size(config.batch_size, config.device),
        show_progress=show_progress,
        **shard.calibrate_kwargs(),
    )
    return shard.keep_shift(shift, saved)


def _generate(
    config: EvalConfig,
    run_dir: Path,
    items: dict[str, list[Item]],
    model: RunModel,
    shift: ShiftVectors | None,
    generate_fn: GenerateFn,
    show_progress: bool,
    shard: Shard,
) -> None:
    store, done = shard.store("generations"), shard.done("generations")
    todo = {
        c.key: [i for i in shard.select(items[c.benchmark]) if (c.key, i.id) not in done]
        for c in config.cells
    }
    options = GenerationOptions(max_new_tokens=config.max_new_tokens, seed=config.seed)
    total = sum(len(v) for v in todo.values())
    logger.info("generating %d completions (%d already done)", total, len(done))
    with tqdm(total=total, desc="generating", unit="item", disable=not show_progress) as bar:
        for cell in config.cells:
            pending = todo[cell.key]
            if not pending:
                continue
            method = method_for(config, cell, shift)

            def generate(batch: list[Item], size: int, method: Method = method) -> list[str]:
                return generate_fn(model.get(), batch, method, options, batch_size=size)

            batches = run_batches(
                pending,
                config.batch_size,
                generate,
                key=length_key(model.get()),
                device=config.device,
            )
            for batch, texts in batches:
                store.append(
                    [
                        {
                            "cell": cell.key,
                            "benchmark": cell.benchmark,
                            "method": cell.method,
                            "alpha": cell.alpha,
                            **({"operator": cell.operator} if cell.alpha is not None else {}),
                            "id": item.id,
                            "item": item.to_json(),
                            "completion": text,
                        }
                        for item, text in zip(batch, texts, strict=True)
                    ]
                )
                bar.update(len(batch))


def _judge(
    config: EvalConfig,
    run_dir: Path,
    items: dict[str, list[Item]],
    get_judge_fn: GetJudgeFn,
    show_progress: bool,
    shard: Shard,
) -> None:
    generations = shard.rows("generations")
    store, done = shard.store("judgments"), shard.done("judgments")
    pending = [r for r in generations if row_key(r) not in done]
    if not pending:
        return
    cells = {c.key: c for c in config.cells}
    names = {c.key: config.judge_for(c.benchmark) for c in config.cells}
    judges = build_judges(config, get_judge_fn, [names[r["cell"]] for r in pending])
    lookup = {bench: {i.id: i for i in its} for bench, its in items.items()}
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for row in pending:
        if row["cell"] not in cells or row["id"] not in lookup[cells[row["cell"]].benchmark]:
            raise DataError(
                f"generations.jsonl has a row for cell {row['cell']!r}, item {row['id']!r} that "
                "this run no longer has (the data changed since the run began); start a new run"
            )
        by_cell.setdefault(row["cell"], []).append(row)
    with tqdm(total=len(pending), desc="judging", unit="item", disable=not show_progress) as bar:
        for key, rows in by_cell.items():
            judge, bench = judges[names[key]], lookup[cells[key].benchmark]

            def judge_rows(
                rows: list[dict[str, Any]], size: int, judge: Any = judge, bench: Any = bench
            ) -> list[Any]:
                verdicts: list[Any] = judge.judge(
                    [bench[r["id"]] for r in rows], [r["completion"] for r in rows]
                )
                return verdicts

            chunks = run_batches(rows, config.batch_size, judge_rows, device=config.device)
            for chunk, verdicts in chunks:
                store.append(
                    [
                        {
                            **{k: r[k] for k in ROW_KEYS if k in r},
                            "judge": names[key],
                            "judgment": v.to_json(),
                        }
                        for r, v in zip(chunk, verdicts, strict=True)
                    ]
                )
                bar.update(len(chunk))


def summarise_run(
    run_dir: str | Path,
    config: EvalConfig | None = None,
    expected: dict[str, int] | None = None,
) -> Summary:
    """Recompute the summary of a run directory from its ``judgments.jsonl``.

    ``expected`` (cell key -> item count) defaults to the number of generations per cell.
    """
    run_dir = Path(run_dir)
    if config is None:
        config = EvalConfig.from_json(read_json(run_dir / "config.json")["config"])
    rows = read_rows(run_dir / "judgments.jsonl")
    if expected is None:
        expected = {}
        for row in read_rows(run_dir / "generations.jsonl"):
            expected[row["cell"]] = expected.get(row["cell"], 0) + 1
    judges = {c.key: config.judge_for(c.benchmark) for c in config.cells}
    return summarise(
        config.cells,
        judges,
        expected,
        rows,
        resamples=config.bootstrap,
        confidence=config.confidence,
        seed=config.seed,
    )


def run_eval(
    config: EvalConfig,
    run_dir: str | Path,
    *,
    vlm: Any = None,
    generate_fn: GenerateFn = generate_method,
    load_items_fn: LoadItemsFn = default_load_items,
    get_judge_fn: GetJudgeFn = default_get_judge,
    calibrate_fn: CalibrateFn = calibrate,
    show_progress: bool = False,
    world: World = SINGLE,
) -> Summary:
    """Generate, judge and summarise every cell of ``config`` into ``run_dir``; resumable.

    Re-running with the same configuration continues where a previous run stopped (even one
    killed with SIGKILL) and produces exactly the rows of an uninterrupted run.

    Args:
        config: the grid, judges and data (see :class:`EvalConfig`).
        run_dir: the run directory (created if missing).
        vlm: an already loaded VLM; None loads ``config.model`` when generation is needed.
        generate_fn, load_items_fn, get_judge_fn, calibrate_fn: injectable for tests.
        show_progress: tqdm bars on stderr (rank 0 only).
        world: this process's rank among several (``World.from_env()`` under torchrun); every
            rank calls ``run_eval`` with the same arguments and does its share of the rows
            (see :mod:`cmrm.evaluation.shard`).

    Returns:
        The summary also written to ``run_dir/summary.json``.

    Raises:
        ConfigError: a different configuration in ``run_dir``, evaluation on anchors, or another
            process holding the run.
        DataError: missing data, or corrupt run files (the message names the line).

    Example:
        >>> config = EvalConfig(benchmarks=("organism:harmful-image",), methods=("none",))
        >>> summary = run_eval(config, "runs/organism")  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    known = judge_names() if get_judge_fn is default_get_judge else None
    prepared = prepare(config, run_dir, load_items_fn, known)
    shard = Shard(run_dir, world)
    show_progress = show_progress and shard.is_main
    with shard.session():
        shard.main_first(lambda: check_config(run_dir, config))
        items = prepared.items
        shard.plan(config.cells, items)
        model = RunModel(config, vlm, prepared)
        shift = _shift(config, run_dir, model, prepared.anchors, calibrate_fn, show_progress, shard)
        _generate(config, run_dir, items, model, shift, generate_fn, show_progress, shard)
        model.release()
        _judge(config, run_dir, items, get_judge_fn, show_progress, shard)
        shard.merge()
        expected = {c.key: len(items[c.benchmark]) for c in config.cells}
        summary = summarise_run(run_dir, config, expected)
        if shard.is_main:
            write_json_atomic(run_dir / "summary.json", summary.to_json())
    logger.info("wrote %s", run_dir / "summary.json")
    return summary
