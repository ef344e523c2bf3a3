"""Generation throughput of the SmolLM2 organism: items per second, greedy, batch 8.

Times :func:`cmrm.generation.generate.generate_items` (no steering) on the first ``--items`` items of a
validation suite with images and of its text-only twin, after one warm-up batch, for each thread
count given. Load time is reported separately.

    python benchmarks/organism_smol_throughput.py --items 32 --tokens 48 --threads 1,2
"""

from __future__ import annotations

import argparse
import time

import torch

from cmrm import load_vlm
from cmrm.generation.generate import GenerationOptions, generate_items
from cmrm.organisms.smol import load_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    start = time.perf_counter()
    vlm = load_vlm("organism-smol")
    print(f"load: {time.perf_counter() - start:.1f} s")
    options = GenerationOptions(max_new_tokens=args.tokens)
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for suite in ("organism-smol:val-harmful-image", "organism-smol:val-harmful-text"):
            items = load_suite(suite, limit=args.items + args.batch)
            generate_items(vlm, items[: args.batch], None, options, batch_size=args.batch)
            clock = time.perf_counter()
            generate_items(vlm, items[args.batch :], None, options, batch_size=args.batch)
            seconds = time.perf_counter() - clock
            print(
                f"{suite}: {args.items / seconds:.2f} items/s ({args.items} items, batch "
                f"{args.batch}, {args.tokens} new tokens, {threads} thread(s), {seconds:.1f} s)"
            )


if __name__ == "__main__":
    main()
