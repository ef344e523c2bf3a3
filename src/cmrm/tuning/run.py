"""``cmrm tune``: calibrate, search the settings on validation benchmarks, recommend one.

Layout of the output directory ``DIR``:

- ``shift.safetensors`` + ``shift.json``: the vectors of the recommended setting's calibration,
  with ``recommended`` (used by generate/eval/gap/serve when ``--shift DIR`` comes without
  ``--alpha``/``--operator``) and ``extra.tuned_on`` (hashes of the anchor and validation
  prompts: ``cmrm eval`` refuses to evaluate on them);
- ``variants/<key>/``: every calibration the search used (independent / sequential ...);
- ``trials/<setting>/``: one ordinary ``cmrm eval`` run directory per setting (resumable), and
  ``trials/baselines/`` (``none`` and ``text-only``);
- ``tune.jsonl``: one row per finished setting (its metrics and score), appended as it finishes;
- ``tune.json``: the objective, constraints, grid, baseline and recommendation;
- ``pareto.png``: safety against utility cost for every setting, the front and the choice.

Re-running the same command resumes: finished settings are read back, unfinished ones continue.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..base.atomic import write_json_atomic
from ..base.errors import ConfigError
from ..calibration.shift import ShiftVectors, library_versions
from ..data.items import Item
from ..evaluation.config import EvalConfig
from ..evaluation.metrics import METRICS
from ..evaluation.paired import paired_metrics, run_cells
from ..evaluation.runner import run_eval
from ..evaluation.sources import check_anchor_leak, default_load_items
from ..evaluation.store import RowStore, read_json, run_lock
from .config import RUNTIME, TuneConfig
from .objective import TrialMetrics, rank_key
from .result import Trial, TuneResult
from .space import Setting, Variant

logger = logging.getLogger(__name__)


class _Data:
    """Validation items and anchors, loaded once and handed to every trial's eval run."""

    def __init__(self, config: TuneConfig) -> None:
        self.config = config
        self.cache: dict[str, list[Item]] = {}

    def load(
        self, spec: str, *, root: Any = None, limit: int | None = None, **kw: Any
    ) -> list[Item]:
        key = f"{spec}|{limit}"
        if key not in self.cache:
            self.cache[key] = default_load_items(spec, root=root, limit=limit, **kw)
        return self.cache[key]

    def anchors(self) -> list[Item]:
        c = self.config
        return self.load(
            c.anchors,
            root=c.roots.get(c.anchors, c.root),
            limit=c.anchor_limit,
            seed=c.seed,
            **dict(c.bench_options.get(c.anchors, {})),
        )

    def val(self, spec: str) -> list[Item]:
        c = self.config
        return self.load(
            spec,
            root=c.roots.get(spec, c.root),
            limit=c.limit,
            seed=c.seed,
            **dict(c.bench_options.get(spec, {})),
        )


def prompt_hashes(items: Sequence[Item]) -> list[str]:
    """Short hashes of the prompts (recorded so that eval can refuse to evaluate on them)."""
    return sorted({hashlib.sha256(i.prompt.encode()).hexdigest()[:16] for i in items})


def _check_config(out_dir: Path, config: TuneConfig) -> None:
    path = out_dir / "tune_config.json"
    plain = json.loads(json.dumps(config.to_json()))  # tuples as lists, as stored
    mine = {k: v for k, v in plain.items() if k not in RUNTIME}
    if path.exists():
        stored = read_json(path)
        theirs = {k: v for k, v in stored["config"].items() if k not in RUNTIME}
        changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if changed:
            raise ConfigError(
                f"{out_dir} holds a tune run with a different configuration (differing: "
                f"{', '.join(changed)}); re-run with the original options or use a new -o DIR"
            )
        return
    write_json_atomic(path, {"config": config.to_json(), "versions": library_versions()})


class _Search:
    """One tune run: calibrations on demand, a trial per setting, scored against the baseline."""

    def __init__(self, config: TuneConfig, out_dir: Path, vlm: Any, show_progress: bool) -> None:
        self.config, self.out, self.vlm, self.show = config, out_dir, vlm, show_progress
        self.data = _Data(config)
        self.shifts: dict[str, ShiftVectors] = {}
        self.none_rows: dict[str, list[dict[str, Any]]] = {}
        """Per validation benchmark, the ``none`` baseline's judged rows (for paired
        differences)."""

    def variant(self, variant: Variant) -> tuple[ShiftVectors, Path]:
        from ..calibration.estimate import calibrate
        from ..data.images import NullImage

        where = self.out / "variants" / variant.key
        if variant.key not in self.shifts:
            if (where / "shift.json").exists():
                self.shifts[variant.key] = ShiftVectors.load(where)
            else:
                shift = calibrate(
                    self.vlm,
                    self.data.anchors(),
                    null=NullImage.parse(self.config.null),
                    estimator=variant.estimator,  # type: ignore[arg-type]
                    contrast=variant.contrast,  # type: ignore[arg-type]
                    layers=None if variant.band == "all" else variant.band,
                    sequential=variant.sequential,
                    positions=variant.positions,
                    batch_size=self.config.batch_size,
                    gate=self.config.space.needs_gate,
                )
                shift.save(where)
                self.shifts[variant.key] = shift
        return self.shifts[variant.key], where

    def evaluate(self, name: str, eval_config: EvalConfig) -> TrialMetrics:
        where = self.out / "trials" / name
        summary = run_eval(eval_config, where, vlm=self.vlm, load_items_fn=self.data.load)
        return TrialMetrics.from_summary(summary).with_paired(self.paired(where))

    def paired(self, run_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
        """Per benchmark and metric, the paired difference of a trial's run to ``none``."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for (bench, _, _, _), rows in run_cells(run_dir).items():
            base = self.none_rows.get(bench, [])
            found = paired_metrics(rows, base, METRICS, seed=self.config.seed)
            out[bench] = {metric: e.to_json() for metric, e in found.items()}
        return out

    def baselines(self) -> tuple[TrialMetrics, TrialMetrics]:
        config = self.config.eval_config(methods=("none", "text-only"))
        summary = run_eval(
            config, self.out / "trials" / "baselines", vlm=self.vlm, load_items_fn=self.data.load
        )
        by_method: dict[str, list[Any]] = {"none": [], "text-only": []}
        for cell in summary.cells:
            by_method[cell.cell.method].append(cell)
        for (bench, method, _, _), rows in run_cells(self.out / "trials" / "baselines").items():
            if method == "none":
                self.none_rows[bench] = rows
        return (
            TrialMetrics.from_summary(replace(summary, cells=tuple(by_method["none"]))),
            TrialMetrics.from_summary(replace(summary, cells=tuple(by_method["text-only"]))),
        )

    def trial(self, setting: Setting, base: TrialMetrics) -> Trial:
        _, where = self.variant(setting.variant)
        config = self.config.eval_config(
            methods=(setting.source,),
            operators=(setting.operator,),
            alphas=(setting.alpha,),
            positions=setting.positions,
            layers=setting.layers,
            shift=str(where),
            contrast=setting.variant.contrast,  # sample-level vectors; dataset ones are in the file
        )
        started = time.perf_counter()
        metrics = self.evaluate(setting.key, config)
        wall = time.perf_counter() - started
        return Trial(setting, metrics, self.config.objective.score(metrics, base), wall)


def run_tune(
    config: TuneConfig, out_dir: str | Path, *, vlm: Any = None, show_progress: bool = False
) -> TuneResult:
    """Search ``config.space`` on the validation benchmarks and write the recommendation.

    Raises:
        ConfigError: bad configuration, validation overlapping the anchors, or a different
            configuration already in ``out_dir``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with run_lock(out):
        _check_config(out, config)
        search = _Search(config, out, vlm, show_progress)
        anchors = search.data.anchors()
        for spec in config.val:
            check_anchor_leak(config.anchors, anchors, spec, search.data.val(spec))
        if search.vlm is None:
            from ..models import load_vlm

            search.vlm = load_vlm(
                config.model,
                dtype=config.dtype,
                device=config.device,
                layers_path=config.layers_path,
                trust_remote_code=config.trust_remote_code,
            )
        base, text_only = search.baselines()
        trials = _search(search, base)
        best = min(trials, key=lambda t: rank_key(t.score))
        grid = len(config.space.settings(search.vlm.num_layers)[: config.budget])
        wall = time.perf_counter() - started
        abstained = not best.score.feasible and config.fallback == "none"
        result = TuneResult(best, tuple(trials), base, text_only, out, grid, wall, abstained)
        _write(search, result)
    return result


def _search(search: _Search, base: TrialMetrics) -> list[Trial]:
    config = search.config
    store = RowStore(search.out / "tune.jsonl")
    # a stored trial keeps its metrics; its score is this run's objective's (which may change
    # on resume: the constraints decide nothing about which settings are run, early stopping
    # aside, which re-runs what the new scores ask for)
    done = {
        trial.setting.key: replace(trial, score=config.objective.score(trial.metrics, base))
        for trial in (Trial.from_json(row) for row in store.rows())
    }
    settings = config.space.settings(search.vlm.num_layers)
    if config.budget is not None:
        settings = settings[: config.budget]
    stopped: set[tuple[Any, ...]] = set()
    trials: list[Trial] = []
    bar = tqdm(settings, desc="tuning", unit="setting", disable=not search.show)
    for setting in bar:
        if setting.group in stopped:
            continue
        trial = done.get(setting.key)
        if trial is None:
            trial = search.trial(setting, base)
            store.append([trial.to_json()])
        trials.append(trial)
        if trial.score.degenerate_gained > config.early_stop:
            stopped.add(setting.group)  # larger alphas of this group only break more
    if not trials:
        raise ConfigError("tune ran no setting; raise --budget")
    return trials


def _write(search: _Search, result: TuneResult) -> None:
    from .report import pareto_figure, tune_json

    best = result.recommended
    shift, _ = search.variant(best.setting.variant)
    data = search.data
    guard = prompt_hashes([*data.anchors(), *(i for s in search.config.val for i in data.val(s))])
    recommended: dict[str, Any] = {
        **best.setting.to_json(),
        "null": search.config.null,
        "feasible": best.score.feasible,
        "objective": best.score.objective,
    }
    if result.abstained:
        # no intervention: alpha 0 is the identity for every operator (tested), so every command
        # that applies the recommendation steers nothing; the closest setting stays beside it
        recommended = {
            **recommended,
            "alpha": 0.0,
            "abstain": True,
            "feasible": True,
            "closest": {"alpha": best.setting.alpha, "key": best.setting.key, "feasible": False},
        }
    extra = {
        **dict(shift.meta.extra),
        "tuned_on": {
            "anchors": search.config.anchors,
            "val": list(search.config.val),
            "prompt_hashes": guard,
        },
    }
    meta = replace(shift.meta, recommended=recommended, extra=extra)
    replace(shift, meta=meta).save(search.out)
    write_json_atomic(search.out / "tune.json", tune_json(search.config, result))
    pareto_figure(result, search.out / "pareto.png")
    logger.info("tune: recommended %s (closest: %s)", result.recommended_key, best.setting.key)
