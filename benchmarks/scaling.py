"""How the cost grows: sample-level steering against prompt length and new tokens; calibration
throughput and peak memory against anchor count.

On the random-weight LLaVA of ``benchmarks/overhead.py`` (``--shape``, built from a config
object, offline; EOS disabled, so every call generates exactly its new tokens), two parts:

**steer** — sample-level CMRM (``Intervention("sample", operator=...)``: two extra passes,
the text-only rows and the null rows' text on the null image's stored prompt prefix, then the
hooks; the prefix is computed in the warm-up, once per tower size) against vanilla
``generate``, as per-round ratios ``sample / vanilla`` in paired rounds (alternating order),
median and 95 % bootstrap interval, along two sweeps:

- prompt length (``--prompt-tokens``, default 64, 256, 576, 1024) at ``--fixed-new-tokens``: by
  default the prompt is grown with *image tokens* (the vision tower's image size is chosen so
  that it yields that many, from a tiny tower's 64 to LLaVA-1.5's 576 and beyond; text stays at
  ``--prompt-words``), so the text-only variant of the sample-level shift stays short as in real
  use; ``--prompt-via text`` grows the text instead;
- new tokens (``--new-tokens``, default 16, 64, 256) at ``--fixed-prompt-tokens``.

The encoded batch of each point is built once, outside the timed region; the sample-level
variant times its own extra encoding and passes (as ``overhead.py`` does).

**calib** — :func:`cmrm.calibrate` over ``--anchors`` (default 16, 64, 256) anchors, half
harmful and half benign (so the safety axes are fitted too), independent and sequential, in
paired rounds (alternating order): throughput in anchors/s (median and interval of the per-round
``anchors / seconds``) and the per-round ratio ``sequential / independent`` of the seconds. Then
the **peak memory** of each (count, mode) — ``sequential-disk`` too, sequential with its
carried states on disk between layers (``carry_budget=0``) — each in a fresh child process (the
model built, one warm-up calibration of one batch; glibc's mmap threshold fixed, so that freed tensors leave the
resident set at once): the growth of the peak resident set size during the call over
the resident set just before it — Linux ``VmHWM`` after resetting it through
``/proc/self/clear_refs``; where that cannot be reset, the growth of ``getrusage`` ``ru_maxrss``
over the same baseline, which misses growth below the earlier peak (the report says which). Not
``tracemalloc``: it sees Python's allocator only, not torch's tensor memory. For scale, the
report prints what keeping one float32 vector per anchor and layer would add (``anchors x
layers x hidden x 4`` bytes) and the slope of the measured growth per anchor; flat memory
(``O(layers x hidden)``) means a slope well below that row.

The tables are printed and written to ``--out``; the figure (four panels: both sweeps,
throughput, memory) is saved to ``--figure``; ``--json`` keeps every per-round value.

    python benchmarks/scaling.py                          # both parts, ~15 min on 2 idle cores
    python benchmarks/scaling.py --parts steer --operator norm-preserving --batch 8
    python benchmarks/scaling.py --prompt-tokens 16,64 --new-tokens 4,8 --fixed-new-tokens 4 \\
        --fixed-prompt-tokens 16 --anchors 4,8 --rounds 2 --calib-rounds 1 --shape tiny \\
        --out /tmp/scaling.txt --figure /tmp/scaling.png  # smoke run
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import overhead
from overhead import build, cpu_name, prompts_for, random_shift
from paired import Summary, bootstrap, paired_rounds_both, ratios

from cmrm.calibration.estimate import calibrate
from cmrm.data.items import Item
from cmrm.interventions import Intervention, intervene
from cmrm.models import VLM
from tests.tiny_models import PATCH, VISION

logger = logging.getLogger("scaling")

overhead.SHAPES.setdefault(
    "tiny",
    dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=16,
    ),
)  # smoke runs only: numbers from it say nothing about a real model
CLOCKS = ("cpu", "wall")
MODES = ("independent", "sequential")
MEMORY_MODES = (*MODES, "sequential-disk")
"""``sequential-disk``: sequential with ``carry_budget=0`` (carried states on disk between
layers, one batch in memory); measured for memory only."""
BLANK = Image.new("RGB", (28, 28), "white")
CHILD_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}
"""glibc: a fixed mmap threshold (its default start, 128 KiB, without the dynamic raise), so a freed
tensor's memory leaves the resident set at once and the peak follows live memory, not the heap's
history (the memory children only; they are not timed)."""
NOISE_KIB = 1024
"""Peak-RSS differences below this between anchor counts are allocator noise, not growth."""


# -------------------------------------------------------------------------------------- steer


def tower_for(image_tokens: int) -> tuple[dict[str, Any], int]:
    """The tests' tiny CLIP tower with an image size that yields ``k * k`` image tokens, ``k``
    the nearest whole root of ``image_tokens``; and ``k * k``."""
    side = max(1, round(math.sqrt(image_tokens)))
    return {**VISION, "image_size": PATCH * side}, side * side


def steer_point(
    vlm: VLM, prompts: list[str], new_tokens: int, args: argparse.Namespace, label: str
) -> dict[str, Any]:
    """Paired rounds of vanilla and sample-level ``generate`` on one batch."""
    images: list[Any] = [BLANK] * len(prompts)
    encoded = vlm.encode(prompts, images)
    kwargs = {"max_new_tokens": new_tokens, "do_sample": False, "pad_token_id": 0}
    iv = Intervention("sample", operator=args.operator, shift=random_shift(vlm))

    def vanilla() -> None:
        with torch.inference_mode():
            vlm.model.generate(**encoded.inputs, **kwargs)

    def sample() -> None:
        with intervene(vlm, iv, prompts, images), torch.inference_mode():
            vlm.model.generate(**encoded.inputs, **kwargs)

    runs: dict[str, Callable[[], object]] = {"vanilla": vanilla, "sample": sample}
    for _ in range(args.warmup):
        for run in runs.values():
            run()

    def progress(r: int, seconds: float) -> None:
        logger.info("%s: round %d/%d %.1f s", label, r + 1, args.rounds, seconds)

    rounds = paired_rounds_both(
        runs, args.rounds, seed=args.seed, progress=progress, order="alternate"
    )
    return {
        "prompt_tokens": int(encoded.input_ids.shape[1]),
        "new_tokens": new_tokens,
        "vanilla_s": {c: statistics.median(rounds.clock(c)["vanilla"]) for c in CLOCKS},
        "ratio": {c: bootstrap(ratios(rounds.clock(c), "vanilla")["sample"]) for c in CLOCKS},
        "rounds": {"wall": rounds.wall, "cpu": rounds.cpu},
    }


def text_words_for(vlm: VLM, target: int, batch: int) -> int:
    """Words per prompt so that the longest of ``batch`` rows has about ``target`` tokens."""
    base = int(vlm.encode(prompts_for(1, 1), [BLANK]).input_ids.shape[1]) - 1
    return max(1, target - base - (batch - 1))


def prompt_sweep(args: argparse.Namespace, base: VLM, dtype: torch.dtype) -> list[dict[str, Any]]:
    """Sample-level overhead at every ``--prompt-tokens`` (a model per tower size)."""
    points = []
    for target in args.prompt_tokens:
        if args.prompt_via == "text":
            vlm = base
            prompts = prompts_for(args.batch, text_words_for(vlm, target, args.batch))
        else:
            tower, _ = tower_for(target)
            vlm = build(args.shape, dtype, args.device, vision=tower)
            prompts = prompts_for(args.batch, args.prompt_words)
        label = f"prompt {target}"
        point = steer_point(vlm, prompts, args.fixed_new_tokens, args, label)
        point["target"] = target
        points.append(point)
        logger.info("%s: sample / vanilla %s", label, point["ratio"][args.clock])
        del vlm
        gc.collect()
    return points


def new_token_sweep(
    args: argparse.Namespace, base: VLM, dtype: torch.dtype
) -> list[dict[str, Any]]:
    """Sample-level overhead at every ``--new-tokens``, at ``--fixed-prompt-tokens``."""
    if args.prompt_via == "text":
        vlm = base
        prompts = prompts_for(args.batch, text_words_for(vlm, args.fixed_prompt_tokens, args.batch))
    else:
        tower, _ = tower_for(args.fixed_prompt_tokens)
        vlm = build(args.shape, dtype, args.device, vision=tower)
        prompts = prompts_for(args.batch, args.prompt_words)
    points = []
    for new_tokens in args.new_tokens:
        label = f"new tokens {new_tokens}"
        point = steer_point(vlm, prompts, new_tokens, args, label)
        point["target"] = new_tokens
        points.append(point)
        logger.info("%s: sample / vanilla %s", label, point["ratio"][args.clock])
    return points


# -------------------------------------------------------------------------------------- calib


def anchors_for(count: int, words: int) -> list[Item]:
    """``count`` anchors with an image, alternately benign and harmful."""
    return [
        Item(
            id=f"anchor-{i}",
            prompt=" ".join(f"w{(11 * i + j) % overhead.N_WORDS}" for j in range(words)),
            image=BLANK,
            kind="harmful" if i % 2 else "benign",
        )
        for i in range(count)
    ]


def calibration_call(vlm: VLM, items: list[Item], mode: str, batch: int) -> None:
    budget = 0 if mode == "sequential-disk" else None
    sequential = mode.startswith("sequential")
    calibrate(vlm, items, sequential=sequential, batch_size=batch, carry_budget=budget)


def calibration_run(vlm: VLM, items: list[Item], mode: str, batch: int) -> Callable[[], object]:
    return lambda: calibration_call(vlm, items, mode, batch)


def calib_throughput(
    vlm: VLM, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Paired rounds of independent and sequential calibration per anchor count."""
    warm = anchors_for(args.calib_batch, args.prompt_words)
    calibration_call(vlm, warm, "independent", args.calib_batch)
    points = []
    prompt_tokens = int(vlm.encode(prompts_for(1, args.prompt_words), [BLANK]).input_ids.shape[1])
    for count in args.anchors:
        items = anchors_for(count, args.prompt_words)
        runs = {mode: calibration_run(vlm, items, mode, args.calib_batch) for mode in MODES}

        def progress(r: int, seconds: float, count: int = count) -> None:
            logger.info(
                "calibration, %d anchors: round %d/%d %.1f s",
                count,
                r + 1,
                args.calib_rounds,
                seconds,
            )

        rounds = paired_rounds_both(runs, args.calib_rounds, progress=progress, order="alternate")
        point: dict[str, Any] = {
            "anchors": count,
            "rounds": {"wall": rounds.wall, "cpu": rounds.cpu},
        }
        for clock in CLOCKS:
            times = rounds.clock(clock)
            point[clock] = {
                **{mode: bootstrap([count / t for t in times[mode]]) for mode in MODES},
                "ratio": bootstrap(ratios(times, "independent")["sequential"]),
            }
        points.append(point)
        logger.info("calibration, %d anchors: %s", count, point[args.clock])
    meta = {"prompt_tokens": prompt_tokens, "layers": vlm.num_layers, "hidden": vlm.hidden_size}
    return points, meta


# ------------------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) of this process; whether that worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    hwm, rss = _status_kib("VmHWM"), _status_kib("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 4096


def max_rss_kib() -> int:
    """``ru_maxrss`` of this process in KiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak // 1024) if sys.platform == "darwin" else int(peak)


def memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: peak-RSS growth of one calibration; one JSON line on stdout."""
    count, mode = args.memory_child.split(":")
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    vlm = build(args.shape, getattr(torch, args.dtype), args.device)
    calibration_call(
        vlm, anchors_for(args.calib_batch, args.prompt_words), "independent", args.calib_batch
    )
    items = anchors_for(int(count), args.prompt_words)
    gc.collect()
    before = _status_kib("VmRSS") or max_rss_kib()
    method = "VmHWM after clear_refs" if reset_peak() else "ru_maxrss (peak not resettable)"
    start_peak = max_rss_kib()
    calibration_call(vlm, items, mode, args.calib_batch)
    if method.startswith("VmHWM"):
        peak = _status_kib("VmHWM") or 0
    else:
        peak = max(max_rss_kib(), start_peak)
    print(json.dumps({"growth_kib": max(0, peak - before), "rss_kib": before, "method": method}))


def calib_memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Peak-RSS growth per (anchor count, mode), each in a child process."""
    out = []
    for count in args.anchors:
        point: dict[str, Any] = {"anchors": count}
        for mode in MEMORY_MODES:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--memory-child",
                f"{count}:{mode}",
            ]
            cmd += ["--shape", args.shape, "--dtype", args.dtype, "--device", args.device]
            cmd += ["--threads", str(args.threads), "--prompt-words", str(args.prompt_words)]
            cmd += ["--calib-batch", str(args.calib_batch)]
            env = {**os.environ, **CHILD_MALLOC}
            done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
            point[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            logger.info("memory, %d anchors, %s: %s", count, mode, point[mode])
        out.append(point)
    return out


# ------------------------------------------------------------------------------------- report


def steer_table(title: str, axis: str, points: list[dict[str, Any]], clock: str) -> list[str]:
    lines = [f"{title} ({clock} time):"]
    head = (
        f"{axis:>14} {'prompt tokens':>13} {'new tokens':>10} {'vanilla s':>10}  sample / vanilla"
    )
    lines += [head, "-" * len(head)]
    for p in points:
        lines.append(
            f"{p['target']:>14} {p['prompt_tokens']:>13} {p['new_tokens']:>10} "
            f"{p['vanilla_s'][clock]:>10.3f}  {p['ratio'][clock]}"
        )
    return lines


def steer_lines(args: argparse.Namespace, results: dict[str, Any]) -> list[str]:
    """Both sweeps on the verdict's clock, then on the other clock."""
    via = "image tokens" if args.prompt_via == "image" else "text words"
    axis = "image tokens" if args.prompt_via == "image" else "target tokens"
    first = (
        f"steer: sample/{args.operator} against vanilla generate, batch {args.batch}, "
        f"{args.rounds} rounds after {args.warmup} warm-up per point; prompts grown with {via}"
    )
    lines = [first]
    other = "wall" if args.clock == "cpu" else "cpu"
    for clock in (args.clock, other):
        prompt = f"against prompt length ({args.fixed_new_tokens} new tokens)"
        tokens = f"against new tokens (~{args.fixed_prompt_tokens} {axis})"
        lines += ["", *steer_table(prompt, axis, results["prompt"], clock)]
        lines += ["", *steer_table(tokens, "new tokens", results["new_tokens"], clock)]
    return lines


def rate(summary: Summary) -> str:
    return f"{summary.median:.1f} [{summary.low:.1f}, {summary.high:.1f}]"


def calib_table(points: list[dict[str, Any]], clock: str) -> list[str]:
    lines = [f"calibration throughput ({clock} time), anchors/s:"]
    head = f"{'anchors':>8}  {'independent':<20} {'sequential':<20} sequential / independent (s)"
    lines += [head, "-" * len(head)]
    for p in points:
        row = p[clock]
        lines.append(
            f"{p['anchors']:>8}  {rate(row['independent']):<20} {rate(row['sequential']):<20} "
            f"{row['ratio']}"
        )
    return lines


def memory_table(points: list[dict[str, Any]], meta: dict[str, Any], batch: int) -> list[str]:
    """Peak growth per (count, mode), and its slope per anchor over the counts that fill at least
    one batch (below that, the batch itself is smaller and so are its activations)."""
    per_anchor_kib = meta["layers"] * meta["hidden"] * 4 / 1024
    modes = [m for m in MEMORY_MODES if all(m in p for p in points)]
    methods = sorted({p[m]["method"] for p in points for m in modes})
    lines = [f"peak memory growth during calibration, MiB ({'; '.join(methods)}):"]
    head = f"{'anchors':>8} " + " ".join(f"{m:>15}" for m in modes)
    head += f" {'one row per anchor & layer':>27}"
    lines += [head, "-" * len(head)]
    for p in points:
        cells = " ".join(f"{p[m]['growth_kib'] / 1024:>15.1f}" for m in modes)
        lines.append(f"{p['anchors']:>8} {cells} {p['anchors'] * per_anchor_kib / 1024:>27.1f}")
    full = [p for p in points if p["anchors"] >= batch]
    if len(full) < 2:
        lines.append(f"slope: n/a (fewer than two anchor counts of at least one batch, {batch})")
    else:
        first, last = full[0], full[-1]
        span = last["anchors"] - first["anchors"]
        for mode in modes:
            grown = last[mode]["growth_kib"] - first[mode]["growth_kib"]
            slope = grown / span
            flat = slope < per_anchor_kib or grown < NOISE_KIB
            lines.append(
                f"{mode}: {slope:.1f} KiB per anchor from {first['anchors']} to "
                f"{last['anchors']} anchors, against {per_anchor_kib:.1f} KiB for one float32 "
                f"row per anchor and layer ({meta['layers']} x {meta['hidden']}): "
                f"{'flat' if flat else 'GROWS'}"
            )
        lines.append(
            f"(flat: a slope below that row, or under {NOISE_KIB // 1024} MiB of growth in all, "
            "the allocator's noise)"
        )
    return lines


def figure(
    path: Path,
    results: dict[str, Any],
    clock: str,
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = [
        (axes[0][0], "prompt", "prompt tokens", "sample / vanilla"),
        (axes[0][1], "new_tokens", "new tokens", "sample / vanilla"),
    ]
    for ax, key, xlabel, ylabel in panels:
        points = results.get(key)
        if not points:
            ax.set_title(f"{xlabel}: not run")
            continue
        xs = [p["prompt_tokens"] if key == "prompt" else p["new_tokens"] for p in points]
        rs = [p["ratio"][clock] for p in points]
        err = [[r.median - r.low for r in rs], [r.high - r.median for r in rs]]
        ax.errorbar(xs, [r.median for r in rs], yerr=err, marker="o", capsize=4)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{ylabel} ({clock} time)")
        ax.set_title(f"sample-level overhead against {xlabel}")
    calib, memory = results.get("calib"), results.get("memory")
    ax = axes[1][0]
    if calib:
        xs = [p["anchors"] for p in calib]
        for mode in MODES:
            rs = [p[clock][mode] for p in calib]
            err = [[r.median - r.low for r in rs], [r.high - r.median for r in rs]]
            ax.errorbar(xs, [r.median for r in rs], yerr=err, marker="o", capsize=4, label=mode)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("anchors")
        ax.set_ylabel(f"anchors/s ({clock} time)")
        ax.set_title("calibration throughput")
        ax.legend()
    else:
        ax.set_title("calibration throughput: not run")
    ax = axes[1][1]
    if memory:
        xs = [p["anchors"] for p in memory]
        for mode in [m for m in MEMORY_MODES if all(m in p for p in memory)]:
            ax.plot(xs, [p[mode]["growth_kib"] / 1024 for p in memory], marker="o", label=mode)
        meta = results["calib_meta"]
        per_anchor = meta["layers"] * meta["hidden"] * 4 / 2**20
        y0 = memory[0]["independent"]["growth_kib"] / 1024
        ax.plot(
            xs,
            [y0 + (x - xs[0]) * per_anchor for x in xs],
            ls="--",
            color="grey",
            label="+ one float32 row per anchor and layer",
        )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("anchors")
        ax.set_ylabel("peak RSS growth (MiB)")
        ax.set_ylim(bottom=0)
        ax.set_title("calibration peak memory")
        ax.legend()
    else:
        ax.set_title("calibration memory: not run")
    fig.suptitle(textwrap.fill(title, 150), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plain(value: Any) -> Any:
    if isinstance(value, Summary):
        return value.__dict__
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas: {text!r}"
        )
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--parts", default="steer,calib", help="steer, calib or both")
    parser.add_argument("--shape", choices=sorted(overhead.SHAPES), default="100m")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: robust)")
    parser.add_argument("--operator", default="add", help="operator of the sample-level shift")
    parser.add_argument("--batch", type=int, default=1, help="rows per generate call")
    parser.add_argument("--prompt-tokens", type=ints, default=ints("64,256,576,1024"))
    parser.add_argument("--prompt-via", choices=["image", "text"], default="image")
    parser.add_argument("--prompt-words", type=int, default=8, help="text words per prompt")
    parser.add_argument("--fixed-new-tokens", type=int, default=32, help="of the prompt sweep")
    parser.add_argument("--new-tokens", type=ints, default=ints("16,64,256"))
    parser.add_argument("--fixed-prompt-tokens", type=int, default=64, help="of the token sweep")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per steer point")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds per steer point")
    parser.add_argument("--anchors", type=ints, default=ints("16,64,256"))
    parser.add_argument("--calib-batch", type=int, default=8, help="calibration batch size")
    parser.add_argument("--calib-rounds", type=int, default=3, help="timed calibration rounds")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory children")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clock", choices=CLOCKS, default=None, help="(cpu with 1 thread)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scaling.txt")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "scaling.png")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not args.parts or not args.parts <= {"steer", "calib"}:
        parser.error("--parts takes steer, calib or steer,calib")
    for name in ("threads", "batch", "prompt_words", "fixed_new_tokens", "fixed_prompt_tokens"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.rounds, args.warmup, args.calib_rounds, args.calib_batch) < 1:
        parser.error("--rounds, --warmup, --calib-rounds and --calib-batch must be at least 1")
    if args.clock is None:
        args.clock = "cpu" if args.threads == 1 and args.device == "cpu" else "wall"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if args.memory_child is not None:
        memory_child(args)
        return 0
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    dtype = getattr(torch, args.dtype)
    started = time.perf_counter()
    base = build(args.shape, dtype, args.device)  # the default tiny tower (4 image tokens)
    params = sum(p.numel() for p in base.model.parameters()) / 1e6
    layers, hidden = base.num_layers, base.hidden_size
    results: dict[str, Any] = {}
    if "steer" in args.parts:
        results["prompt"] = prompt_sweep(args, base, dtype)
        results["new_tokens"] = new_token_sweep(args, base, dtype)
    if "calib" in args.parts:
        results["calib"], results["calib_meta"] = calib_throughput(base, args)
    del base
    gc.collect()
    if "calib" in args.parts and not args.no_memory:
        results["memory"] = calib_memory(args)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name()
    header = (
        f"model: random LLaVA {args.shape} ({params:.0f}M parameters at the default tower, "
        f"{layers} layers, hidden {hidden}), {args.dtype} on {args.device} "
        f"({device}, {torch.get_num_threads()} torch thread(s)); median [95 % bootstrap "
        "interval] of per-round values, paired rounds in alternating order"
    )
    lines = [header]
    if "steer" in args.parts:
        lines += steer_lines(args, results)
    if "calib" in args.parts:
        meta = results["calib_meta"]
        lines.append("")
        lines.append(
            f"calib: cmrm.calibrate (mean, contrast null, every layer), batch {args.calib_batch}, "
            f"{meta['prompt_tokens']} prompt tokens per anchor, {args.calib_rounds} round(s)"
        )
        for clock in (args.clock, *[c for c in CLOCKS if c != args.clock]):
            lines += ["", *calib_table(results["calib"], clock)]
        if "memory" in results:
            lines += ["", *memory_table(results["memory"], meta, args.calib_batch)]
    lines.append(f"\nwall time {time.perf_counter() - started:.0f} s")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        logger.info("wrote %s", args.out)
    if args.figure is not None:
        figure(args.figure, results, args.clock, header)
        logger.info("wrote %s", args.figure)
    if args.json is not None:
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "device": device}
        args.json.write_text(json.dumps(plain({**payload, **results}), indent=1) + "\n")
        logger.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
