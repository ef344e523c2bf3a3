"""Wall-time overhead of CMRM steering on ``generate``, measured side by side in one run.

Builds a random-weight LLaVA (Llama decoder; ~100M parameters by default, a LLaVA-1.5-7B shape
with ``--shape 7b`` on a GPU), then times vanilla generation against dataset-level and
sample-level steering (the latter includes its two extra prefill passes) with **every operator**
(``add``, ``project``, ``norm-preserving``, ``gated``, ``conditional`` — the last with a threshold
that steers every row, its worst case), for batch 1 and 8, with
``--new-tokens`` greedy tokens (EOS disabled so every run generates the same number). Rounds are
interleaved and the median is reported, so drifting machine load hits every variant alike.

    python benchmarks/overhead.py                 # CPU, ~100M parameters
    python benchmarks/overhead.py --shape 7b --device cuda --dtype bfloat16
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
from transformers import AutoConfig, AutoModelForImageTextToText

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmrm.calibration.axes import SafetyAxes
from cmrm.calibration.shift import ShiftMeta, ShiftVectors
from cmrm.generation.generate import GenerationOptions, generate_batch
from cmrm.interventions import Intervention
from cmrm.interventions.operators import operator_names
from cmrm.models import VLM, from_model
from tests.tiny_models import SPECIALS, VISION, llava_processor

SHAPES: dict[str, dict[str, Any]] = {
    "100m": dict(
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=12,
        head_dim=64,
    ),
    "7b": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        head_dim=128,
    ),
}


def build(shape: str, n_words: int, dtype: torch.dtype, device: str) -> VLM:
    text = {
        "model_type": "llama",
        "vocab_size": len(SPECIALS) + n_words,
        "pad_token_id": 0,
        **SHAPES[shape],
    }
    config = AutoConfig.for_model(
        "llava", text_config=text, vision_config=VISION, image_token_index=SPECIALS.index("<image>")
    )
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config).to(device=device, dtype=dtype).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return from_model(model, llava_processor(n_words), model_id=f"random-llava-{shape}")


def random_shift(vlm: VLM) -> ShiftVectors:
    meta = ShiftMeta(
        source_model=vlm.model_id,
        model_type=vlm.model_type,
        hidden_size=vlm.hidden_size,
        num_layers=vlm.num_layers,
    )
    layers = tuple(range(vlm.num_layers))
    vectors = 0.01 * torch.randn(vlm.num_layers, vlm.hidden_size)
    directions = torch.nn.functional.normalize(torch.randn(vlm.num_layers, vlm.hidden_size), dim=-1)
    axes = SafetyAxes(
        layers, directions, torch.zeros(vlm.num_layers), torch.full((vlm.num_layers,), -1e9)
    )  # threshold below every state: conditional steers every row (its worst case)
    return ShiftVectors(layers=layers, vectors=vectors, meta=meta, axes=axes)


def timed(
    vlm: VLM,
    prompts: list[str],
    images: list[Any],
    steering: Intervention | None,
    options: GenerationOptions,
) -> float:
    if vlm.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    generate_batch(vlm, prompts, images, steering, options)
    if vlm.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="100m")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    vlm = build(args.shape, 8000, getattr(torch, args.dtype), args.device)
    params = sum(p.numel() for p in vlm.model.parameters()) / 1e6
    print(
        f"model: {vlm.model_id}, {params:.0f}M parameters, {args.dtype} on {vlm.device}; "
        f"{args.new_tokens} new tokens, median of {args.rounds} interleaved rounds (order rotated)"
    )
    options = GenerationOptions(max_new_tokens=args.new_tokens)
    shift = random_shift(vlm)
    variants: dict[str, Intervention | None] = {"vanilla": None}
    for op in operator_names():
        variants[f"dataset/{op}"] = Intervention("dataset", operator=op, shift=shift)
        variants[f"sample/{op}"] = Intervention("sample", operator=op, shift=shift)
    image = Image.new("RGB", (28, 28), "white")
    print(
        f"{'batch':>5}  {'operator':>15}  {'vanilla s':>9}  {'dataset/vanilla':>15}  "
        f"{'sample/vanilla':>14}"
    )
    for batch in (int(b) for b in args.batches.split(",")):
        prompts = [" ".join(f"w{(7 * i + j) % 8000}" for j in range(12 + i)) for i in range(batch)]
        images = [image] * batch
        for steering in variants.values():  # warm-up
            generate_batch(vlm, prompts, images, steering, GenerationOptions(max_new_tokens=4))
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for round_index in range(args.rounds):
            # rotate the order every round so no variant always runs first (or after a warm-up)
            turn = round_index % len(names)
            for name in names[turn:] + names[:turn]:
                times[name].append(timed(vlm, prompts, images, variants[name], options))
        med = {name: statistics.median(values) for name, values in times.items()}
        for op in operator_names():
            print(
                f"{batch:>5}  {op:>15}  {med['vanilla']:>9.2f}  "
                f"{med[f'dataset/{op}'] / med['vanilla']:>15.3f}  "
                f"{med[f'sample/{op}'] / med['vanilla']:>14.3f}"
            )


if __name__ == "__main__":
    main()
