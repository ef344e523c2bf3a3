"""Run an evaluation grid: generate every cell, judge every generation, summarise; resumable.

Order of work: (1) check every input and load every benchmark and the anchors, writing nothing
(:mod:`.preflight`); (2) check or write ``config.json``; (3) calibrate or load the dataset-level
shift; (4) generate, cell by cell, in batches, each batch's rows appended only after the batch
completes; (5) release the model, then judge every generation not judged yet; (6) recompute
``summary.json`` from ``judgments.jsonl``. Generation and judging are separate passes so that a
VLM and a judge model never need memory at once. A first start that fails before its first row
removes what it wrote (see :func:`.preflight.claim_run_dir`).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..atomic import write_json_atomic
from ..baselines import Baseline
from ..checks import check_items_fit
from ..errors import DataError
from ..estimate import calibrate
from ..generate import GenerationOptions
from ..images import NullImage
from ..interventions.value import Intervention
from ..items import Item
from ..methods import Method, generate_method
from ..models.vlm import VLM
from ..shift import ShiftVectors
from .config import Cell, EvalConfig, check_config
from .metrics import Summary, summarise
from .preflight import Prepared, claim_run_dir, judge_names, prepare
from .sources import (
    GetJudgeFn,
    LoadItemsFn,
    build_judges,
    default_get_judge,
    default_load_items,
)
from .store import RowStore, read_json, read_rows, row_key

logger = logging.getLogger(__name__)

GenerateFn = Callable[..., list[str]]
"""``generate_method(vlm, items, method, options, *, batch_size, show_progress) -> texts``."""
CalibrateFn = Callable[..., ShiftVectors]


def method_for(config: EvalConfig, cell: Cell, shift: ShiftVectors | None) -> Method:
    """The method of one cell: a :class:`Baseline`, or an :class:`Intervention` built from the
    run's positions, layers, null image and contrast."""
    if cell.alpha is None:
        return Baseline(
            cell.method,  # type: ignore[arg-type]  # validated by EvalConfig
            dict(config.method_options.get(cell.method, {})),
        )
    return Intervention(
        source=cell.method,  # type: ignore[arg-type]  # validated by EvalConfig
        operator=cell.operator,
        alpha=cell.alpha,
        positions=config.positions,  # type: ignore[arg-type]
        layers=config.layers,
        shift=shift,
        null=NullImage.parse(config.null),
        contrast=config.contrast,  # type: ignore[arg-type]
    )


class _Model:
    """The VLM, loaded on first use (a run with every row done never loads it), and checked
    against the run once: layer spec, given shift, prompt lengths."""

    def __init__(self, config: EvalConfig, vlm: Any, prepared: Prepared) -> None:
        self.config, self.vlm, self.prepared = config, vlm, prepared
        self.owned = self.checked = False

    def get(self) -> Any:
        if self.vlm is None:
            from ..models import load_vlm

            logger.info("loading %s", self.config.model)
            self.vlm = load_vlm(
                self.config.model,
                dtype=self.config.dtype,
                device=self.prepared.device,
                layers_path=self.config.layers_path,
                trust_remote_code=self.config.trust_remote_code,
            )
            self.owned = True
        if not self.checked:
            self._check(self.vlm)
            self.checked = True
        return self.vlm

    def _check(self, vlm: Any) -> None:
        if not isinstance(vlm, VLM):  # an injected stand-in: nothing to check it against
            return
        if self.config.layers is not None:
            vlm.layers.resolve(self.config.layers)
        shift = self.prepared.shift
        if shift is not None:
            shift.check_compatible(vlm.model_type, vlm.hidden_size, vlm.num_layers)
        for bench, items in self.prepared.items.items():
            check_items_fit(vlm, items, f"benchmark {bench!r}")
        check_items_fit(vlm, self.prepared.anchors, f"anchor set {self.config.anchors!r}")

    def release(self) -> None:
        if self.owned:
            self.vlm = None
            gc.collect()
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _shift(
    config: EvalConfig,
    run_dir: Path,
    model: _Model,
    anchors: Sequence[Item],
    calibrate_fn: CalibrateFn,
    show_progress: bool,
) -> ShiftVectors | None:
    if not config.needs_shift:
        return None
    if model.prepared.shift is not None:
        return model.prepared.shift
    saved = run_dir / "shift"
    if (saved / "shift.json").exists():
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
        batch_size=config.batch_size,
        show_progress=show_progress,
    )
    shift.save(saved)
    return shift


def _generate(
    config: EvalConfig,
    run_dir: Path,
    items: dict[str, list[Item]],
    model: _Model,
    shift: ShiftVectors | None,
    generate_fn: GenerateFn,
    show_progress: bool,
) -> None:
    store = RowStore(run_dir / "generations.jsonl")
    todo = {
        c.key: [i for i in items[c.benchmark] if (c.key, i.id) not in store] for c in config.cells
    }
    options = GenerationOptions(max_new_tokens=config.max_new_tokens, seed=config.seed)
    total = sum(len(v) for v in todo.values())
    logger.info("generating %d completions (%d already done)", total, len(store))
    with tqdm(total=total, desc="generating", unit="item", disable=not show_progress) as bar:
        for cell in config.cells:
            pending = todo[cell.key]
            method = method_for(config, cell, shift) if pending else None
            for start in range(0, len(pending), config.batch_size):
                batch = pending[start : start + config.batch_size]
                texts = generate_fn(
                    model.get(), batch, method, options, batch_size=config.batch_size
                )
                if len(texts) != len(batch):
                    raise DataError(f"generator returned {len(texts)} texts for {len(batch)} items")
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
) -> None:
    generations = RowStore(run_dir / "generations.jsonl").rows()
    store = RowStore(run_dir / "judgments.jsonl")
    pending = [r for r in generations if row_key(r) not in store]
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
            judge = judges[names[key]]
            for start in range(0, len(rows), config.batch_size):
                chunk = rows[start : start + config.batch_size]
                batch = [lookup[cells[key].benchmark][r["id"]] for r in chunk]
                verdicts = judge.judge(batch, [r["completion"] for r in chunk])
                store.append(
                    [
                        {
                            **{
                                k: r[k]
                                for k in (
                                    "cell",
                                    "benchmark",
                                    "method",
                                    "alpha",
                                    "operator",
                                    "id",
                                    "item",
                                )
                                if k in r
                            },
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
) -> Summary:
    """Generate, judge and summarise every cell of ``config`` into ``run_dir``; resumable.

    Re-running with the same configuration continues where a previous run stopped (even one
    killed with SIGKILL) and produces exactly the rows of an uninterrupted run.

    Args:
        config: the grid, judges and data (see :class:`EvalConfig`).
        run_dir: the run directory (created if missing).
        vlm: an already loaded VLM; None loads ``config.model`` when generation is needed.
        generate_fn, load_items_fn, get_judge_fn, calibrate_fn: injectable for tests.
        show_progress: tqdm bars on stderr.

    Returns:
        The summary also written to ``run_dir/summary.json``.

    Every input that can be checked without the model (benchmarks, splits, images, judges,
    shift file, device, run folder) is checked before anything is written; a first start that
    fails before its first row leaves nothing that would refuse the corrected configuration.

    Raises:
        ConfigError: a different configuration in ``run_dir``, evaluation on anchors, or another
            process holding the run.
        DataError: missing data, or corrupt run files (the message names the line).
        UnknownNameError: an unknown benchmark or judge.

    Example:
        >>> config = EvalConfig(benchmarks=("organism:harmful-image",), methods=("none",))
        >>> summary = run_eval(config, "runs/organism")  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    known = judge_names() if get_judge_fn is default_get_judge else None
    prepared = prepare(config, run_dir, load_items_fn, known)
    with claim_run_dir(run_dir):
        check_config(run_dir, config)
        items = prepared.items
        model = _Model(config, vlm, prepared)
        shift = _shift(config, run_dir, model, prepared.anchors, calibrate_fn, show_progress)
        _generate(config, run_dir, items, model, shift, generate_fn, show_progress)
        model.release()
        _judge(config, run_dir, items, get_judge_fn, show_progress)
        expected = {c.key: len(items[c.benchmark]) for c in config.cells}
        summary = summarise_run(run_dir, config, expected)
        write_json_atomic(run_dir / "summary.json", summary.to_json())
    logger.info("wrote %s", run_dir / "summary.json")
    return summary
