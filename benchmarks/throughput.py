"""Generation throughput of the organism, side by side in one run: batch 1 vs batch 8 in one
process, and 1 vs 2 processes (torchrun, gloo, the eval's strided item sharding), in items/s.

Each variant generates the same items (organism harmful-image and benign-text requests,
interleaved) with greedy decoding and a fixed number of new tokens. Rounds are interleaved and
the order rotates every round; the median is reported. Every process uses one thread
(``OMP_NUM_THREADS=1``, torchrun's default), so "2 processes" means 2 cores. The process variants
time only generation (between two barriers), not process start or model loading.

    python benchmarks/throughput.py                     # 32 items, 16 new tokens, 3 rounds
    python benchmarks/throughput.py --items 64 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cmrm.base import distributed
from cmrm.data.items import Item
from cmrm.generation.generate import GenerationOptions, generate_items
from cmrm.models import load_vlm
from cmrm.organisms.toy.suites import load_suite

HERE = Path(__file__).resolve()
BIN = Path(sys.executable).parent


def workload(n: int) -> list[Item]:
    images = load_suite("organism:harmful-image", limit=(n + 1) // 2)
    texts = load_suite("organism:benign-text", limit=n // 2)
    mixed = [item for pair in zip(images, texts, strict=False) for item in pair]
    return (mixed + images[len(texts) :])[:n]


def timed(items: list[Item], batch_size: int, new_tokens: int, vlm: object) -> float:
    options = GenerationOptions(max_new_tokens=new_tokens)
    start = time.perf_counter()
    generate_items(vlm, items, None, options, batch_size=batch_size)  # type: ignore[arg-type]
    return time.perf_counter() - start


def worker(n: int, batch_size: int, new_tokens: int) -> None:
    """One rank of the process variants: generate this rank's items between two barriers."""
    world = distributed.World.from_env()
    with distributed.process_group(world):
        vlm = load_vlm("organism")
        items = [it for i, it in enumerate(workload(n)) if world.owns(i)]
        timed(items[:2], batch_size, 2, vlm)  # warm up
        distributed.barrier()
        start = time.perf_counter()
        timed(items, batch_size, new_tokens, vlm)
        distributed.barrier()
        elapsed = time.perf_counter() - start
    if world.is_main:
        print(json.dumps({"seconds": elapsed}))


def launch(processes: int, n: int, batch_size: int, new_tokens: int) -> float:
    args = [str(HERE), "--worker", "--items", str(n), "--batch-size", str(batch_size)]
    args += ["--new-tokens", str(new_tokens)]
    cmd = (
        [sys.executable, *args]
        if processes == 1
        else [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", str(processes), *args]
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.items, args.batch_size, args.new_tokens)
        distributed.exit_process(0)
    torch.set_num_threads(1)
    vlm = load_vlm("organism")
    items = workload(args.items)
    timed(items[:2], 1, 2, vlm)
    variants = {
        "batch 1, 1 process": lambda: timed(items, 1, args.new_tokens, vlm),
        f"batch {args.batch_size}, 1 process": lambda: timed(
            items, args.batch_size, args.new_tokens, vlm
        ),
        f"batch {args.batch_size}, 1 process (launched)": lambda: launch(
            1, args.items, args.batch_size, args.new_tokens
        ),
        f"batch {args.batch_size}, 2 processes (torchrun)": lambda: launch(
            2, args.items, args.batch_size, args.new_tokens
        ),
    }
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds[name].append(variants[name]())
    print(f"{args.items} organism items, {args.new_tokens} new tokens, greedy, 1 thread/process")
    print(f"median of {args.rounds} interleaved rounds\n")
    rates = {name: args.items / statistics.median(s) for name, s in seconds.items()}
    print(f"{'variant':<40} {'items/s':>8} {'vs batch 1':>11}")
    base = rates[names[0]]
    for name in names:
        print(f"{name:<40} {rates[name]:>8.2f} {rates[name] / base:>10.2f}x")
    print(
        f"\nbatch {args.batch_size} / batch 1: {rates[names[1]] / rates[names[0]]:.2f}x;  "
        f"2 processes / 1 process: {rates[names[3]] / rates[names[2]]:.2f}x"
    )


if __name__ == "__main__":
    main()
