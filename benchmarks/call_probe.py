"""Thread CPU time of whole ``generate`` calls per dataset-level variant, alternating order.

A probe beside ``overhead.py``: where its shuffled rounds show a variant slower than its hooks
explain, this times one call of each variant in turn, ``--reps`` times, at one new token (the
prefill and the per-call set-up alone) and at ``--new-tokens``, on the same random LLaVA, and
prints the median milliseconds and the ratio to the bare hook.

    python benchmarks/call_probe.py --variants dataset/gated,dataset/mars,dataset/conditional
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="dataset/gated,dataset/mars,dataset/conditional")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    vlm = overhead.build("100m", torch.float32, "cpu")
    shift = overhead.random_shift(vlm)
    image = Image.new("RGB", (28, 28), "white")
    prompts = overhead.prompts_for(1, 12)
    inputs = vlm.encode(prompts, [image]).inputs
    contexts, _ = overhead.variants_for(vlm, shift, prompts, [image], args.variants)
    names = ["vanilla", "bare-hook", *args.variants.split(",")]
    for new in (1, args.new_tokens):
        times: dict[str, list[float]] = {name: [] for name in names}
        for rep in range(args.reps):
            for name in names if rep % 2 == 0 else names[::-1]:
                with contexts[name](), torch.inference_mode():
                    start = time.thread_time()
                    vlm.model.generate(
                        **inputs, max_new_tokens=new, do_sample=False, pad_token_id=0
                    )
                    times[name].append(time.thread_time() - start)
        base = statistics.median(times["bare-hook"])
        cells = [
            f"{name} {statistics.median(v) * 1e3:.1f} ms ({statistics.median(v) / base:.3f})"
            for name, v in times.items()
        ]
        print(f"{new} new token(s): " + ", ".join(cells))


if __name__ == "__main__":
    main()
