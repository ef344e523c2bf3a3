"""Per-step CPU cost of each hook implementation, isolated from the model's own compute.

Enters each variant's context on the random LLaVA of ``overhead.py``, runs one real prefill
through the model (so the layout and the gates are recorded), then calls the hooks that the
variant registered — the top-level pre-hook with a decode step's keyword arguments and every
decoder layer's forward hook on a ``[batch, 1, hidden]`` state — ``--steps`` times, and reports
the thread CPU time per simulated decode step (µs), i.e. what the hooks add to every generated
token. Thread CPU time does not count time the process waits for a core, so this figure is stable
on a busy machine where wall-time ratios are not. ``vanilla`` is the loop with no hooks (the
harness's own cost), and its decode step time is printed for scale.

    python benchmarks/hook_cost.py --batch 1,8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead
from paired import bootstrap


def registered(module: nn.Module) -> tuple[list[Any], list[Any]]:
    """The module's forward hooks and forward pre-hooks, as lists of callables."""
    return list(module._forward_hooks.values()), list(module._forward_pre_hooks.values())


def step_cost(vlm: Any, factory: Any, inputs: dict[str, Any], batch: int, steps: int) -> float:
    """Thread CPU seconds per simulated decode step of the hooks ``factory()`` registers."""
    layers = vlm.layers.modules
    before = [set(m._forward_hooks) for m in layers]
    before_pre = set(vlm.model._forward_pre_hooks)
    with factory(), torch.inference_mode():
        out = vlm.model(**inputs, use_cache=True)
        cache = out.cache
        pre = [h for k, h in vlm.model._forward_pre_hooks.items() if k not in before_pre]
        hooks = [
            [h for k, h in m._forward_hooks.items() if k not in old]
            for m, old in zip(layers, before, strict=True)
        ]
        hidden = torch.randn(batch, 1, vlm.hidden_size, dtype=vlm.dtype, device=vlm.device)
        ids = torch.ones(batch, 1, dtype=torch.long, device=vlm.device)
        length = int(inputs["input_ids"].shape[1])
        mask = torch.ones(batch, length + 1, dtype=torch.long, device=vlm.device)
        kwargs = {
            "input_ids": ids,
            "cache": cache,
            "position_ids": torch.full((batch, 1), length, device=vlm.device),
            "attention_mask": mask,
            "use_cache": True,
            "return_dict": True,
        }
        start = time.thread_time()
        for _ in range(steps):
            for h in pre:
                h(vlm.model, (), kwargs)
            for module, layer_hooks in zip(layers, hooks, strict=True):
                for h in layer_hooks:
                    h(module, (hidden,), hidden)
        return (time.thread_time() - start) / steps


def decode_step(vlm: Any, inputs: dict[str, Any], steps: int) -> float:
    """Thread CPU seconds of one vanilla decode step of the model (for scale)."""
    with torch.inference_mode():
        start = time.thread_time()
        vlm.model.generate(**inputs, max_new_tokens=steps + 1, do_sample=False, pad_token_id=0)
        total = time.thread_time() - start
        start = time.thread_time()
        vlm.model.generate(**inputs, max_new_tokens=1, do_sample=False, pad_token_id=0)
        prefill = time.thread_time() - start
    return (total - prefill) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(overhead.SHAPES), default="100m")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--steps", type=int, default=300, help="simulated steps per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    vlm = overhead.build(args.shape, torch.float32, "cpu")
    shift = overhead.random_shift(vlm)
    image = Image.new("RGB", (28, 28), "white")
    print(
        f"model: {vlm.model_id}, {vlm.num_layers} layers, 1 thread; hook CPU time per decode "
        f"step, µs: median of {args.repeats} repeats of {args.steps} steps [95 % interval]"
    )
    for batch in (int(b) for b in args.batch.split(",")):
        prompts = overhead.prompts_for(batch, 12)
        images: list[Any] = [image] * batch
        inputs = vlm.encode(prompts, images).inputs
        factories, _ = overhead.variants_for(vlm, shift, prompts, images, args.only)
        factories = {k: v for k, v in factories.items() if not k.startswith("sample/")}
        step = decode_step(vlm, inputs, 8)
        print(f"batch {batch}: vanilla decode step {step * 1e3:.1f} ms (thread CPU time)")
        costs: dict[str, list[float]] = {name: [] for name in factories}
        for _ in range(args.repeats):
            for name, factory in factories.items():
                costs[name].append(step_cost(vlm, factory, inputs, batch, args.steps))
        base = statistics.median(costs["vanilla"])
        for name, values in costs.items():
            summary = bootstrap([1e6 * (v - base) for v in values])
            share = 100 * summary.median / (step * 1e6)
            print(f"  {name:<26} {summary!s:<28} {share:5.2f} % of a decode step")


if __name__ == "__main__":
    main()
