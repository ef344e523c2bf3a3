"""The configuration of an evaluation run: which cells to fill, how to judge them, and presets.

A run is a grid of **cells**: one per (benchmark, method, operator, alpha). Baselines (``none``,
``text-only``, ``adashield``, ``ecso``) take no operator or alpha, so they get one cell per
benchmark; interventions (``dataset``, ``sample``) get one cell per operator and alpha. The configuration is written to
``RUN_DIR/config.json`` on the first run; a resumed run must match it, except for the
:data:`RUNTIME_KEYS`, which change how the work is done but not its result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..base.atomic import write_json_atomic
from ..base.errors import ConfigError, DataError, UnknownNameError
from ..base.validation import check_alpha
from ..calibration.names import CONTRASTS, ESTIMATORS
from ..calibration.shift import library_versions
from ..data.images import NullImage
from ..generation.batching import check_batch_size
from ..generation.names import BASELINES, METHOD_NAMES
from ..interventions.operators import OPERATORS, axis_operators, needs_axis
from ..models.placement import Placement
from ..models.positions import check_positions
from .store import read_json

NO_ALPHA_METHODS = BASELINES
"""Methods whose output does not depend on alpha or operator (one cell per benchmark)."""

FORMAT_VERSION = 1
RUNTIME_KEYS = (
    "batch_size",
    "device",
    "bootstrap",
    "confidence",
    "device_map",
    "max_memory",
    "offload_folder",
)
"""Keys that may differ on resume: they do not change any row (the summary is recomputed)."""

PAPER_ALPHAS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
PAPER_JUDGE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
"""Default judge model of the paper preset (an open stand-in; override with ``--judge-option``)."""


@dataclass(frozen=True)
class Cell:
    """One (benchmark, method, alpha, operator) cell of the grid; ``alpha`` is None for
    baselines."""

    benchmark: str
    method: str
    alpha: float | None
    operator: str = "add"

    @property
    def key(self) -> str:
        """The cell's stable string key, used in every row: ``bench::method`` for baselines,
        ``bench::method@alpha`` for the paper's ``add``, ``bench::method/operator@alpha``."""
        base = f"{self.benchmark}::{self.method}"
        if self.alpha is None:
            return base
        op = "" if self.operator == "add" else f"/{self.operator}"
        return f"{base}{op}@{float(self.alpha)!r}"


@dataclass(frozen=True)
class EvalConfig:
    """Everything that determines the rows of a run (see ``docs/evaluation.md``)."""

    model: str = "organism"
    """Hub id, local directory, or ``organism``."""
    benchmarks: tuple[str, ...] = ()
    """Benchmark specs: a name, ``name:split``, or a generic ``.jsonl`` path."""
    methods: tuple[str, ...] = ("none", "dataset", "sample")
    """Baselines (none, text-only, adashield, ecso) and intervention sources (dataset, sample)."""
    operators: tuple[str, ...] = ("add",)
    """Operators of the interventions (``add`` is the paper's; every name of
    :data:`~cmrm.interventions.operators.OPERATORS` is accepted)."""
    alphas: tuple[float, ...] = (1.0,)
    positions: str = "all"
    layers: str | None = None
    """Decoder layers to steer (``all``, ``4:12``, ``1,3``); None means all."""
    shift: str | None = None
    """Directory of a calibrated dataset-level shift (for method ``dataset``)."""
    anchors: str | None = None
    """Anchor benchmark spec to calibrate the dataset-level shift from (e.g. ``vlsafe:anchor``)."""
    estimator: str = "mean"
    sequential: bool = False
    """Calibrate in-run sequentially (layer l measured with layers < l steered)."""
    calibration_alpha: float = 1.0
    """Alpha at which earlier layers are steered during sequential calibration."""
    contrast: str = "null"
    null: str = "blank"
    """Null image spec: used by calibration, sample-level shifts and ``pair=null`` items."""
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Options per baseline (e.g. ``{"ecso": {"self_check": True}}``)."""
    judge: str | None = None
    """Judge for every benchmark without an override; None picks a default per benchmark."""
    judges: Mapping[str, str] = field(default_factory=dict)
    """Per-benchmark judge overrides (benchmark spec -> judge name)."""
    judge_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Options per judge name (judge name -> keyword arguments of ``get_judge``)."""
    root: str | None = None
    """Data root for every registered benchmark without a per-benchmark root."""
    roots: Mapping[str, str] = field(default_factory=dict)
    bench_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Loader options per benchmark spec (e.g. ``{"forbidden-questions": {"pair": "null"}}``)."""
    limit: int | None = None
    max_new_tokens: int = 128
    seed: int = 0
    """Seed of anchor/eval splits and of the bootstrap."""
    dtype: str | None = None
    layers_path: str | None = None
    """Explicit decoder-layer path (``--layers-path``), for layouts the structural rule misses."""
    trust_remote_code: bool = False
    batch_size: int | str = 8
    """Rows per batch, or ``"auto"`` (on CUDA: back off on out-of-memory; see cmrm.generation.batching)."""
    device: str | None = None
    device_map: str | None = None
    """``auto``/``balanced``/``sequential`` or a JSON device map: big-model loading."""
    max_memory: str | None = None
    """Memory per device for ``device_map``, e.g. ``0=20GiB,1=20GiB,cpu=64GiB``."""
    offload_folder: str | None = None
    """Where weights a device map sends to ``disk`` are kept."""
    bootstrap: int = 1000
    """Bootstrap resamples for the 95 % intervals."""
    confidence: float = 0.95
    applied: str | None = None
    """The ``cmrm tune`` recommendation this run applied (``--shift DIR`` without setting
    flags), in words; None when the settings came from flags or defaults."""

    def __post_init__(self) -> None:
        if not self.benchmarks:
            raise ConfigError("no benchmark given; pass at least one --bench NAME|FILE.jsonl")
        if len(set(self.benchmarks)) != len(self.benchmarks):
            raise ConfigError(f"benchmarks repeat: {list(self.benchmarks)}; list each once")
        bad = [m for m in self.methods if m not in METHOD_NAMES]
        if bad or not self.methods:
            raise ConfigError(
                f"unknown method(s) {bad or '(none)'}; expected some of {', '.join(METHOD_NAMES)}"
            )
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"methods repeat: {list(self.methods)}")
        bad_ops = [o for o in self.operators if o not in OPERATORS]
        if bad_ops or not self.operators or len(set(self.operators)) != len(self.operators):
            raise ConfigError(
                f"operators must be distinct names among {', '.join(OPERATORS.names())}; "
                f"got {list(self.operators)}"
            )
        extra = sorted(set(self.method_options) - set(BASELINES))
        if extra:
            raise ConfigError(
                f"method options for {extra}; options are for baselines ({', '.join(BASELINES)})"
            )
        steered = any(m not in NO_ALPHA_METHODS for m in self.methods)
        if steered and not self.alphas:
            raise ConfigError("no alpha given; pass --alpha 0.5,1.0 for dataset/sample methods")
        for a in self.alphas:
            check_alpha(a, error=ConfigError)
        if len(set(self.alphas)) != len(self.alphas):
            raise ConfigError(f"alphas repeat: {list(self.alphas)}")
        check_positions(self.positions)
        if self.contrast not in CONTRASTS or self.estimator not in ESTIMATORS:
            raise ConfigError(
                f"contrast must be one of {CONTRASTS} and estimator one of {ESTIMATORS}; "
                f"got contrast={self.contrast!r}, estimator={self.estimator!r}"
            )
        NullImage.parse(self.null)
        if self.needs_shift and (self.shift is None) == (self.anchors is None):
            raise ConfigError(
                f"method 'dataset' (and the operators {'/'.join(axis_operators())}) need exactly "
                "one of --shift DIR (a calibrated shift) or --anchors BENCH:anchor (calibrate "
                "here); got "
                f"shift={self.shift!r}, anchors={self.anchors!r}"
            )
        unknown = sorted(set(self.judges) - set(self.benchmarks))
        if unknown:
            raise ConfigError(
                f"judge override(s) for {unknown}, which are not benchmarks of this run "
                f"({list(self.benchmarks)}); use BENCH=JUDGE with a --bench spec"
            )
        check_batch_size(self.batch_size)
        Placement.parse(self.device, self.device_map, self.max_memory, self.offload_folder)
        for name, value in (
            ("limit", self.limit),
            ("max_new_tokens", self.max_new_tokens),
            ("bootstrap", self.bootstrap),
        ):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence}")

    @property
    def needs_shift(self) -> bool:
        """A calibrated shift is needed: dataset-level vectors, or safety axes for an operator."""
        axes = any(needs_axis(op) for op in self.operators)
        return "dataset" in self.methods or ("sample" in self.methods and axes)

    @property
    def cells(self) -> tuple[Cell, ...]:
        """Every cell, benchmark-major, in method then alpha order."""
        out: list[Cell] = []
        for bench in self.benchmarks:
            for method in self.methods:
                if method in NO_ALPHA_METHODS:
                    out.append(Cell(bench, method, None))
                    continue
                for op in self.operators:
                    out.extend(Cell(bench, method, float(a), op) for a in self.alphas)
        return tuple(out)

    def judge_for(self, benchmark: str) -> str:
        """The judge name of a benchmark: override, else global ``judge``, else the default."""
        return self.judges.get(benchmark) or self.judge or default_judge(benchmark)

    def root_for(self, benchmark: str) -> str | None:
        return self.roots.get(benchmark, self.root)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict of every field (tuples as lists, mappings as dicts)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvalConfig:
        """Inverse of :meth:`to_json`; unknown keys are a ConfigError listing the valid ones."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; valid keys: {', '.join(valid)}")
        values = dict(data)
        for key in ("benchmarks", "methods", "operators", "alphas"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def differences(self, other: EvalConfig) -> list[str]:
        """Keys (outside :data:`RUNTIME_KEYS`) whose values differ between two configs."""
        mine, theirs = self.to_json(), other.to_json()
        return [k for k in mine if k not in RUNTIME_KEYS and mine[k] != theirs[k]]


def check_config(run_dir: Path, config: EvalConfig) -> None:
    """Write ``config.json`` on the first run; on resume raise ConfigError if it differs."""
    path = run_dir / "config.json"
    if not path.exists():
        write_json_atomic(
            path,
            {
                "format_version": FORMAT_VERSION,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "versions": library_versions(),
                "config": config.to_json(),
            },
        )
        return
    stored = read_json(path)
    try:
        previous = EvalConfig.from_json(stored["config"])
    except (KeyError, TypeError) as err:
        raise DataError(f"{path} holds no valid run configuration ({err})") from err
    changed = previous.differences(config)
    if changed:
        old, new = previous.to_json(), config.to_json()
        detail = "; ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in changed)
        raise ConfigError(
            f"{run_dir} was started with a different configuration; differing key(s): "
            f"{', '.join(changed)} ({detail}). Re-run with the original options to resume, "
            "or pass a new -o RUN_DIR."
        )


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def base_name(spec: str) -> str:
    """A spec without its ``:anchor``/``:eval`` split suffix."""
    head, sep, tail = spec.rpartition(":")
    organism = spec.startswith(("organism:", "organism-smol:"))
    return head if sep and tail in ("anchor", "eval") and not organism else spec


def default_judge(benchmark: str) -> str:
    """The judge a benchmark spec's registry entry declares (:attr:`Benchmark.default_judge`):
    ``organism`` for organism suites, ``mc`` for ScienceQA, ``reference`` for open-ended utility
    benchmarks (LLaVA-Bench, MM-Vet), ``refusal`` for everything else: other benchmarks, generic
    JSONL files, and names the registry does not know (sources injected into
    :func:`~cmrm.evaluation.run_eval`, whose loading reports unknown names itself).
    """
    from ..data.registry import parse_spec

    try:
        return parse_spec(benchmark)[0].default_judge
    except UnknownNameError:
        return "refusal"


def paper_preset(
    model: str, *, judge_model: str = PAPER_JUDGE_MODEL, **overrides: Any
) -> EvalConfig:
    """The paper's protocol (Liu et al. 2024, Sec. 5): VLSafe with its 20/80 anchor/eval split,
    JailbreakLLMs forbidden questions paired with a null image, LLaVA-Bench-COCO and ScienceQA-IMG;
    methods none, dataset and sample; alpha 0.1 to 1.5; an LLM safety judge.

    ``overrides`` replace any field of the built config (``limit=``, ``batch_size=`` ...).
    """
    config = EvalConfig(
        model=model,
        benchmarks=("vlsafe:eval", "forbidden-questions", "llava-bench-coco", "scienceqa"),
        methods=("none", "dataset", "sample"),
        alphas=PAPER_ALPHAS,
        anchors="vlsafe:anchor",
        null="blank",
        judge="llm",
        judges={"scienceqa": "mc", "llava-bench-coco": "reference"},
        judge_options={"llm": {"model": judge_model}, "reference": {"model": judge_model}},
        bench_options={"forbidden-questions": {"pair": "null"}, "scienceqa": {"subset": "img"}},
    )
    return replace(config, **overrides) if overrides else config
