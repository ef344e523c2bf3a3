"""Evaluation at the floor: ``cmrm eval``'s generation of a cell against a bare ``generate`` loop.

On organism-smol (bundled, offline), in the same rounds:

- ``bare``: a batched ``model.generate`` loop written directly against the HF processor and model
  (chat template, ``processor(text, images, padding=True)``, ``generate``, ``batch_decode``) —
  the floor of any evaluation;
- ``cmrm/none``: what ``cmrm eval`` runs for every cell of method ``none`` (the code of
  :func:`cmrm.evaluation.runner._generate`: the cell's method from ``method_for``,
  ``run_batches`` over the length-sorted items, ``generate_method`` — image loading, encoding,
  ``intervene``, ``generate``, decoding), minus the rows' JSON store and the progress bar;
- ``cmrm/dataset/<op>@<alpha>``: the same for one steered cell (dataset-level, a shift given
  with ``--shift DIR`` or calibrated once, before the rounds, on the first ``--anchor-limit``
  anchors, as ``cmrm eval --anchors`` does on all of them); ``--no-steer`` leaves it out.

The items, batch size, ``max_new_tokens`` and greedy decoding are the same for every variant; the
bare loop gets the batches in the order cmrm forms them (items sorted by prompt length), planned
before the rounds, so that it does no work cmrm's loop could skip. Items are loaded as
``cmrm eval`` loads them (:func:`cmrm.evaluation.preflight.prepare`), ``--items`` per benchmark.

Every round runs the variants back to back, in alternating order (forward, then reversed). A
variant's figure per round is its generated tokens per second (rows x generated positions, EOS
as the model has it) divided by that round's ``bare`` tokens per second; the table shows the
median of those ratios and a 95 % bootstrap interval. **Target: ``cmrm / bare >= 0.9``,
judged on the interval's lower bound.** Each call is timed on process CPU time and on wall time;
the verdict uses wall time, except with one torch thread on a CPU (``--threads 1``, for a shared
machine), where it uses CPU time (the work done, not the waits for a core); both tables are
printed. The default thread count is torch's (``OMP_NUM_THREADS``, else every core), as
``cmrm eval`` runs.

The warm-up round records the token ids ``generate`` returns in every variant: ``cmrm/none`` and
``bare`` must be identical, batch by batch (prompt and new tokens), and so must their decoded
answers; a difference is reported and makes the script exit with status 1 after the report.
``--profile`` runs one more round of each variant under cProfile and shows where the time outside
the model's forward goes (the forward, the rest of HF ``generate``, and everything outside
``generate``), with the top cumulative entries of the cmrm variants.

    python benchmarks/eval_floor.py                      # 2 x 64 items, batch 32, 16 tokens
    python benchmarks/eval_floor.py --profile --json benchmarks/results/eval_floor.json
    python benchmarks/eval_floor.py --items 4 --batch 4 --new-tokens 4 --rounds 2 \\
        --anchor-limit 4 --out /tmp/eval_floor.txt       # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import inspect
import io
import json
import logging
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from overhead import cpu_name
from paired import Summary, bootstrap, paired_rounds_both

from cmrm.calibration.estimate import calibrate
from cmrm.calibration.shift import ShiftVectors
from cmrm.data.images import NullImage
from cmrm.data.items import Item
from cmrm.evaluation.config import Cell, EvalConfig
from cmrm.evaluation.model import RunModel, method_for
from cmrm.evaluation.preflight import prepare
from cmrm.evaluation.sources import default_load_items
from cmrm.generation.batching import length_key, resolve_batch_size, run_batches
from cmrm.generation.generate import GenerationOptions
from cmrm.generation.methods import generate_method
from cmrm.models import VLM

logger = logging.getLogger("eval_floor")

BENCHES = "organism-smol:val-image-qa,organism-smol:val-harmful-image"
TARGET = 0.9
CLOCKS = ("cpu", "wall")
BARE = "bare"
NONE = "cmrm/none"


@dataclass
class Recorder:
    """What ``generate`` returned, batch by batch, while recording is on."""

    on: bool = False
    outputs: list[tuple[int, Tensor]] = field(default_factory=list)
    """(prompt length, returned ids) of each ``generate`` call."""

    def tokens(self) -> int:
        """Generated positions over every row of every recorded batch."""
        return sum(int(ids.shape[0]) * (int(ids.shape[1]) - n) for n, ids in self.outputs)


@contextlib.contextmanager
def recording(vlm: VLM, recorder: Recorder) -> Iterator[None]:
    """Wrap ``vlm.model.generate`` so that it records its outputs into ``recorder``."""
    original = vlm.model.generate

    def generate(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        ids: Tensor = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        recorder.outputs.append((int(ids.shape[1]), out.detach().cpu()))
        return out

    vlm.model.generate = generate
    try:
        yield
    finally:
        del vlm.model.generate  # the instance attribute; the class's method shows through again


# ---------------------------------------------------------------------------------------- bare


def plan_batches(processor: Any, items: Sequence[Item], batch_size: int) -> list[list[Item]]:
    """Batches in the order cmrm forms them: stable sort by (has an image, prompt tokens)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    keys = [(item.image is not None, len(tokenizer(item.prompt)["input_ids"])) for item in items]
    order = sorted(range(len(items)), key=keys.__getitem__)
    rows = [items[i] for i in order]
    return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]


def bare_loop(
    model: Any,
    processor: Any,
    batches: Sequence[Sequence[Item]],
    max_new_tokens: int,
    recorder: Recorder | None = None,
) -> list[str]:
    """The floor: chat template, processor, ``generate`` (greedy), ``batch_decode``."""
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    answers: list[str] = []
    for batch in batches:
        texts = []
        for item in batch:
            content: list[dict[str, str]] = [{"type": "image"}] if item.image is not None else []
            content.append({"type": "text", "text": item.prompt})
            texts.append(
                processor.apply_chat_template(
                    [{"role": "user", "content": content}],
                    add_generation_prompt=True,
                    tokenize=False,
                )
            )
        images = [item.image for item in batch if item.image is not None]
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
        inputs = {k: v.to(model.device) for k, v in processor(**kwargs).items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        prompt_len = int(inputs["input_ids"].shape[1])
        if recorder is not None and recorder.on:
            recorder.outputs.append((prompt_len, out.detach().cpu()))
        decoded = tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
        answers.extend(text.strip() for text in decoded)
    return answers


# ---------------------------------------------------------------------------------------- cmrm


def cmrm_cells(
    vlm: VLM,
    config: EvalConfig,
    cells: Sequence[Cell],
    items: dict[str, list[Item]],
    shift: ShiftVectors | None,
) -> list[str]:
    """The generation of ``cells`` as :func:`cmrm.evaluation.runner._generate` does it (without
    the row store): answers in the order the batches complete."""
    options = GenerationOptions(max_new_tokens=config.max_new_tokens, seed=config.seed)
    answers: list[str] = []
    for cell in cells:
        method = method_for(config, cell, shift)

        def generate(batch: list[Item], size: int, method: Any = method) -> list[str]:
            return generate_method(vlm, batch, method, options, batch_size=size)

        batches = run_batches(
            items[cell.benchmark],
            config.batch_size,
            generate,
            key=length_key(vlm),
            device=config.device,
        )
        for _, texts in batches:
            answers.extend(texts)
    return answers


# -------------------------------------------------------------------------------------- checks


def compare_ids(cmrm: Recorder, bare: Recorder) -> tuple[bool, str]:
    """Whether the two recordings hold the same ids, batch by batch; and a line saying so."""
    if len(cmrm.outputs) != len(bare.outputs):
        return False, f"{len(cmrm.outputs)} cmrm batches against {len(bare.outputs)} bare batches"
    rows = 0
    for b, ((n1, a), (n2, c)) in enumerate(zip(cmrm.outputs, bare.outputs, strict=True)):
        if a.shape != c.shape or n1 != n2:
            return False, f"batch {b}: shapes {tuple(a.shape)} (prompt {n1}) vs {tuple(c.shape)}"
        if not torch.equal(a, c):
            row = int((a != c).any(dim=1).nonzero()[0])
            return False, f"batch {b}, row {row}: token ids differ"
        rows += int(a.shape[0])
    return True, f"identical ({len(cmrm.outputs)} batches, {rows} rows, prompt and new tokens)"


def rows_changed(steered: Recorder, none: Recorder) -> str:
    """How many rows the steered cell's new tokens change against ``none`` (a sanity check that
    the steering acts)."""
    changed = total = 0
    for (n1, a), (n2, b) in zip(steered.outputs, none.outputs, strict=True):
        width = min(a.shape[1] - n1, b.shape[1] - n2)
        changed += int((a[:, n1 : n1 + width] != b[:, n2 : n2 + width]).any(dim=1).sum())
        total += int(a.shape[0])
    return f"new tokens differ from cmrm/none in {changed} of {total} rows"


# ------------------------------------------------------------------------------------- profile


def code_key(function: Any) -> tuple[str, int, str] | None:
    """The pstats key of ``function`` (decorators unwrapped), or None."""
    try:
        code = inspect.unwrap(function).__code__
    except (AttributeError, ValueError):
        return None
    return (code.co_filename, code.co_firstlineno, code.co_name)


def profile_run(run: Callable[[], object], vlm: VLM, top: int) -> dict[str, Any]:
    """One call of ``run`` under cProfile: seconds in total, in the model's forward, in the rest
    of HF ``generate``, outside ``generate``; and the top cumulative entries as text."""
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = float(stats.total_tt)  # type: ignore[attr-defined]

    def cumulative(function: Any) -> float | None:
        key = code_key(function)
        return float(raw[key][3]) if key is not None and key in raw else None

    forward = cumulative(type(vlm.model).forward)
    generate = cumulative(type(vlm.model).generate)
    listings = {}
    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(top)
        lines = [line for line in text.getvalue().splitlines() if line.strip()]
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        listings[order] = lines[start:]
    return {
        "total": total,
        "forward": forward,
        "generate_rest": None if forward is None or generate is None else generate - forward,
        "outside_generate": None if generate is None else total - generate,
        "top": listings,
    }


# -------------------------------------------------------------------------------------- report


def seconds(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


def report_tables(
    rounds: Any, tokens: dict[str, int], names: list[str], clock: str
) -> tuple[list[str], dict[str, Any]]:
    """The table of one clock: tokens/s per variant, ratio to bare per round; and its data."""
    times = rounds.clock(clock)
    rate = {n: [tokens[n] / t for t in times[n]] for n in names}
    rows: dict[str, Any] = {}
    lines = [f"{clock} time:"]
    head = f"{'variant':<28} {'tokens':>7}  {'tokens/s':<24} {'/ bare':<24} target >= {TARGET}"
    lines += [head, "-" * len(head)]
    for name in names:
        speed = bootstrap(rate[name])
        row: dict[str, Any] = {"tokens": tokens[name], "tokens_per_s": speed}
        ratio_cell, verdict = "-", ""
        if name != BARE:
            per_round = [s / b for s, b in zip(rate[name], rate[BARE], strict=True)]
            ratio = bootstrap(per_round)
            row["vs_bare"], row["vs_bare_rounds"] = ratio, per_round
            ratio_cell = str(ratio)
            verdict = "pass" if ratio.low >= TARGET else "FAIL"
            row["verdict"] = verdict
        rows[name] = row
        speed_cell = f"{speed.median:.1f} [{speed.low:.1f}, {speed.high:.1f}]"
        lines.append(f"{name:<28} {tokens[name]:>7}  {speed_cell:<24} {ratio_cell:<24} {verdict}")
    return lines, rows


def profile_lines(profiles: dict[str, dict[str, Any]], top: int) -> list[str]:
    """The profile's breakdown per variant, then the top entries of every cmrm variant."""
    lines = ["", "cProfile, one more call of each variant (profiling inflates Python-level work;"]
    lines.append("the timed rounds above are the measurement), seconds:")
    head = f"{'variant':<28} {'total':>8} {'forward':>9} {'generate rest':>14} "
    head += f"{'outside generate':>17}"
    lines += [head, "-" * len(head)]
    for name, prof in profiles.items():
        lines.append(
            f"{name:<28} {seconds(prof['total']):>8} {seconds(prof['forward']):>9} "
            f"{seconds(prof['generate_rest']):>14} {seconds(prof['outside_generate']):>17}"
        )
    for name, prof in profiles.items():
        if name != BARE:
            for order, what in (("cumulative", "cumulative time"), ("tottime", "own time")):
                lines += ["", f"{name}: top {top} by {what}", *prof["top"][order]]
    return lines


def plain(value: Any) -> Any:
    """JSON-safe: Summaries as dicts, recursively."""
    if isinstance(value, Summary):
        return value.__dict__
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="organism-smol")
    parser.add_argument("--bench", default=BENCHES, help="comma-separated benchmark specs")
    parser.add_argument("--items", type=int, default=64, help="items per benchmark (--limit)")
    parser.add_argument("--batch", type=int, default=32, help="rows per batch (--batch-size)")
    parser.add_argument("--new-tokens", type=int, default=16, help="--max-new-tokens")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds after warm-up")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (checks ids)")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch threads (default: torch's, i.e. OMP_NUM_THREADS or every core, as cmrm "
        "eval runs; 1 on a shared machine, where the verdict then uses CPU time)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="model dtype (default: the model's)")
    parser.add_argument("--no-steer", action="store_true", help="leave the steered cell out")
    parser.add_argument("--operator", default="add", help="operator of the steered cell")
    parser.add_argument("--alpha", type=float, default=0.5, help="alpha of the steered cell")
    parser.add_argument("--layers", default=None, help="layers of the steered cell (all)")
    parser.add_argument("--shift", default=None, help="a calibrated shift directory")
    parser.add_argument("--anchors", default="organism-smol:anchor", help="without --shift")
    parser.add_argument(
        "--anchor-limit", type=int, default=16, help="anchors calibrated on (the first N)"
    )
    parser.add_argument(
        "--clock", choices=CLOCKS, default=None, help="the verdict's clock (cpu with 1 thread)"
    )
    parser.add_argument("--profile", action="store_true", help="one profiled round at the end")
    parser.add_argument("--profile-top", type=int, default=25, help="cumulative entries shown")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "eval_floor.txt",
        help="write the report here too",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    for name in ("items", "batch", "new_tokens", "rounds", "warmup", "threads", "anchor_limit"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.clock is None:
        args.clock = "cpu" if args.threads == 1 and args.device == "cpu" else "wall"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    steer = not args.no_steer
    config = EvalConfig(
        model=args.model,
        benchmarks=tuple(b.strip() for b in args.bench.split(",") if b.strip()),
        methods=("none", "dataset") if steer else ("none",),
        operators=(args.operator,),
        alphas=(args.alpha,),
        layers=args.layers,
        shift=args.shift if steer else None,
        anchors=None if not steer or args.shift else args.anchors,
        limit=args.items,
        max_new_tokens=args.new_tokens,
        batch_size=args.batch,
        device=args.device,
        dtype=args.dtype,
    )
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare(config, Path(tmp) / "run", default_load_items, None)
    model = RunModel(config, None, prepared)
    clock = time.perf_counter()
    vlm: VLM = model.get()
    load_s = time.perf_counter() - clock
    items = prepared.items
    logger.info(
        "loaded %s in %.1f s; %s", vlm.model_id, load_s, {b: len(i) for b, i in items.items()}
    )
    shift = prepared.shift
    calib_note = ""
    if steer and shift is None:
        anchors = prepared.anchors[: args.anchor_limit]
        clock = time.perf_counter()
        shift = calibrate(
            vlm,
            anchors,
            null=NullImage.parse(config.null),
            estimator=config.estimator,  # type: ignore[arg-type]  # validated by EvalConfig
            layers=config.layers,
            contrast=config.contrast,  # type: ignore[arg-type]  # validated by EvalConfig
            sequential=config.sequential,
            calibration_alpha=config.calibration_alpha,
            positions=config.positions,
            batch_size=resolve_batch_size(config.batch_size, config.device),
        )
        calib_note = (
            f"shift calibrated on the first {len(anchors)} of {args.anchors} in "
            f"{time.perf_counter() - clock:.1f} s (before the rounds, not timed)"
        )
        logger.info(calib_note)
    elif steer:
        calib_note = f"shift from {args.shift}"

    none_cells = [c for c in config.cells if c.method == "none"]
    steer_cells = [c for c in config.cells if c.method == "dataset"]
    steer_name = f"cmrm/dataset/{args.operator}@{args.alpha:g}"
    bare_batches = [
        batch
        for bench in config.benchmarks
        for batch in plan_batches(vlm.processor, items[bench], args.batch)
    ]
    recorders = {BARE: Recorder(), NONE: Recorder(), steer_name: Recorder()}
    answers: dict[str, list[str]] = {}

    def runner(name: str) -> Callable[[], object]:
        recorder = recorders[name]

        def run() -> None:
            if name == BARE:
                answers[name] = bare_loop(
                    vlm.model, vlm.processor, bare_batches, args.new_tokens, recorder
                )
                return
            cells = none_cells if name == NONE else steer_cells
            with recording(vlm, recorder) if recorder.on else contextlib.nullcontext():
                answers[name] = cmrm_cells(vlm, config, cells, items, shift)

        return run

    names = [BARE, NONE] + ([steer_name] if steer else [])
    runs = {name: runner(name) for name in names}
    for w in range(args.warmup):
        for name in names:
            recorders[name].on = w == 0
            clock = time.perf_counter()
            runs[name]()
            recorders[name].on = False
            logger.info("warm-up %d: %s %.1f s", w + 1, name, time.perf_counter() - clock)
    ids_same, ids_line = compare_ids(recorders[NONE], recorders[BARE])
    texts_same = answers[NONE] == answers[BARE]  # both in the batches' order
    if not ids_same or not texts_same:
        logger.error(
            "cmrm/none and bare differ: ids %s; answers identical: %s", ids_line, texts_same
        )
    tokens = {name: recorders[name].tokens() for name in names}

    def progress(r: int, secs: float) -> None:
        logger.info("round %d/%d: %.1f s", r + 1, args.rounds, secs)

    rounds = paired_rounds_both(runs, args.rounds, progress=progress, order="alternate")
    profiles = (
        {name: profile_run(runs[name], vlm, args.profile_top) for name in names}
        if (args.profile)
        else {}
    )

    n_items = sum(len(items[b]) for b in config.benchmarks)
    params = sum(p.numel() for p in vlm.model.parameters()) / 1e6
    dtype = str(vlm.dtype).removeprefix("torch.")
    per_bench = ", ".join(f"{b} x {len(items[b])}" for b in config.benchmarks)
    lines: list[str] = []
    lines.append(
        f"model: {vlm.model_id} ({params:.0f}M parameters, {dtype} on {vlm.device}, "
        f"{cpu_name()}, {torch.get_num_threads()} torch thread(s)); load {load_s:.1f} s"
    )
    lines.append(
        f"items: {n_items} ({per_bench}); batch {args.batch}; max_new_tokens "
        f"{args.new_tokens}; greedy; {len(bare_batches)} batches per variant"
    )
    lines.append(
        f"{args.rounds} paired rounds after {args.warmup} warm-up, alternating order "
        f"({' -> '.join(names)}, then reversed); median [95 % bootstrap interval]"
    )
    if calib_note:
        changed = rows_changed(recorders[steer_name], recorders[NONE])
        lines.append(
            f"steered cell: {steer_name} (layers {args.layers or 'every layer of the shift'}); "
            f"{calib_note}; {changed}"
        )
    lines.append(
        f"token ids, cmrm/none vs bare: {ids_line}; decoded answers "
        f"{'identical' if texts_same else 'DIFFER'}"
    )
    payload: dict[str, Any] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "device": cpu_name() if vlm.device.type == "cpu" else torch.cuda.get_device_name(),
        "ids_identical": ids_same,
        "answers_identical": texts_same,
        "tokens": tokens,
        "seconds": {"wall": rounds.wall, "cpu": rounds.cpu},
        "tables": {},
    }
    for which in (args.clock, *[c for c in CLOCKS if c != args.clock]):
        table, rows = report_tables(rounds, tokens, names, which)
        lines += ["", *table]
        payload["tables"][which] = rows
    lines.append(
        f"target: cmrm / bare >= {TARGET} on the interval's lower bound "
        f"(verdicts on {args.clock} time; tokens = rows x generated positions)"
    )
    if profiles:
        lines += profile_lines(profiles, args.profile_top)
        payload["profile"] = {
            n: {k: v for k, v in p.items() if k != "top"} for n, p in profiles.items()
        }
    lines.append(f"\nwall time {time.perf_counter() - started:.0f} s")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        logger.info("wrote %s", args.out)
    if args.json is not None:
        args.json.write_text(json.dumps(plain(payload), indent=1) + "\n")
        logger.info("wrote %s", args.json)
    return 0 if ids_same and texts_same else 1


if __name__ == "__main__":
    sys.exit(main())
