"""Run the demo: gap analysis, calibration on the anchor split, an evaluation grid, a report.

Steps (everything on the organism's held-out suites; calibration never sees them):

1. load the organism (``model``: ``organism`` or a directory from ``cmrm organism train``);
2. the representation gap on harmful requests with images (text-only vs image vs blank image);
3. a dataset-level shift calibrated on ``organism:anchor``, saved to ``OUT/shift``;
4. ``cmrm eval``'s runner, once per positions policy, over methods ``none``, ``text-only``,
   ``dataset`` and ``sample`` at each alpha (runs in ``OUT/runs/<positions>``, resumable);
5. ``OUT/summary.json`` (one record per method, alpha and positions), ``OUT/report.md`` and
   ``OUT/figures/``; the table is returned for printing.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CmrmError
from ..models.vlm import VLM
from ..shift import library_versions
from .records import (
    ANCHOR_SUITE,
    ORGANISM,
    SUITES,
    TARGET_SUITE,
    DemoRecord,
    DemoResult,
    best_setting,
    records_from_summary,
)
from .render import write_outputs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """Knobs of ``cmrm demo``; the defaults are what ``make demo`` runs."""

    out_dir: Path = Path("cmrm-demo")
    model: str = "organism"
    alphas: tuple[float, ...] = (0.02, 0.05, 0.1, 0.25, 1.0)
    positions: tuple[str, ...] = ("last", "all")
    estimator: str = "mean"
    null: str = "blank"
    limit: int = 100
    """Items per held-out suite."""
    anchors: int = 200
    """Anchor items used for calibration."""
    max_new_tokens: int = 24
    batch_size: int = 64
    gap: bool = True

    def __post_init__(self) -> None:
        if not self.alphas or not self.positions:
            raise CmrmError("the demo needs at least one alpha and one positions policy")
        if self.limit < 1 or self.anchors < 1:
            raise CmrmError(f"limit and anchors must be positive, got {self.limit}, {self.anchors}")


def load_model(model: str) -> VLM:
    """A bundled model by name (``organism``), or a directory of weights trained with the
    organism's recipe (``cmrm organism train -o DIR``), as a VLM."""
    from ..models import MODELS, load_bundled, load_vlm

    if model in MODELS:
        return load_vlm(model)
    return load_bundled(ORGANISM, model)


def _gap(vlm: VLM, config: DemoConfig, show_progress: bool) -> dict[str, Any]:
    from ..analysis.gap import run_gap
    from ..data import load_items
    from ..images import NullImage

    items = load_items(TARGET_SUITE, limit=config.limit)
    report = run_gap(
        vlm,
        items,
        out_dir=config.out_dir / "gap",
        nulls=(NullImage.parse(config.null),),
        show_progress=show_progress,
        meta={"data": TARGET_SUITE},
    )
    gap = report.to_json()
    return {"largest_gap_layer": report.largest_gap_layer, "layers": gap["layers"]}


def _calibrate(vlm: VLM, config: DemoConfig, show_progress: bool) -> Path:
    from ..data import load_items
    from ..estimate import calibrate
    from ..images import NullImage

    anchors = load_items(ANCHOR_SUITE, limit=config.anchors)
    shift = calibrate(
        vlm,
        anchors,
        null=NullImage.parse(config.null),
        estimator=config.estimator,  # type: ignore[arg-type]
        batch_size=config.batch_size,
        show_progress=show_progress,
    )
    return shift.save(config.out_dir / "shift")


def _evaluate(
    vlm: VLM, config: DemoConfig, shift_dir: Path, show_progress: bool
) -> list[DemoRecord]:
    from ..evaluation import EvalConfig, run_eval

    records: list[DemoRecord] = []
    for index, positions in enumerate(config.positions):
        methods = (
            ("none", "text-only", "dataset", "sample") if index == 0 else ("dataset", "sample")
        )
        eval_config = EvalConfig(
            model=config.model,
            benchmarks=SUITES,
            methods=methods,
            alphas=config.alphas,
            positions=positions,
            shift=str(shift_dir),
            null=config.null,
            judge="organism",
            limit=config.limit,
            max_new_tokens=config.max_new_tokens,
            batch_size=config.batch_size,
        )
        summary = run_eval(
            eval_config, config.out_dir / "runs" / positions, vlm=vlm, show_progress=show_progress
        )
        records.extend(records_from_summary(summary, positions))
    return records


def run_demo(config: DemoConfig | None = None, *, show_progress: bool = False) -> DemoResult:
    """Run every step and write ``summary.json``, ``report.md`` and figures to ``out_dir``."""
    config = config or DemoConfig()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    # The organism is tiny: thread start-up and contention cost far more than the matrix work
    # (measured: 40x faster on one thread while another process used the second core).
    torch.set_num_threads(1)
    try:
        return _run(config, show_progress)
    finally:
        torch.set_num_threads(threads)


def _run(config: DemoConfig, show_progress: bool) -> DemoResult:
    vlm = load_model(config.model)
    gap = _gap(vlm, config, show_progress) if config.gap else None
    shift_dir = _calibrate(vlm, config, show_progress)
    records = _evaluate(vlm, config, shift_dir, show_progress)
    result = DemoResult(tuple(records), best_setting(records), gap, config.out_dir)
    header = {
        key: (str(value) if isinstance(value, Path) else value)
        for key, value in asdict(config).items()
    }
    write_outputs(result, {"config": header, "versions": library_versions()})
    logger.info("demo outputs in %s", config.out_dir)
    return result
