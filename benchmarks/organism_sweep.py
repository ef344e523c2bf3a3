"""Which CMRM variant works best on the model organism? A wider sweep than ``cmrm demo``.

Calibrates on ``organism:anchor`` (never evaluated on), then generates on held-out harmful+image
requests and image questions for every (method, estimator, layers, positions, alpha) in the grid
and prints, per setting, harmful+image compliance / clean refusal / degenerate rates and image-QA
accuracy, all from the organism's exact judge. Also prints the shift-to-hidden-state norm ratio
per layer, which explains most of what the sweep shows.

    python benchmarks/organism_sweep.py --limit 100
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter
from typing import Any

import torch

from cmrm import calibrate, load_vlm
from cmrm.calibration.capture import capture_states
from cmrm.generation.generate import GenerationOptions, generate_items
from cmrm.interventions import Intervention
from cmrm.organisms.toy import OrganismJudge, load_suite


def rates(
    vlm: Any, items: list[Any], steering: Intervention | None, options: GenerationOptions
) -> Counter:
    texts = generate_items(vlm, items, steering, options, batch_size=64)
    return Counter(j.label for j in OrganismJudge().judge(items, texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--alphas", default="0.02,0.05,0.1,0.25")
    args = parser.parse_args()
    torch.set_num_threads(1)
    vlm = load_vlm("organism")
    anchors = load_suite("organism:anchor", limit=200)
    harmful = load_suite("organism:harmful-image", limit=args.limit)
    qa = load_suite("organism:image-qa", limit=args.limit)
    options = GenerationOptions(max_new_tokens=24)
    shifts = {e: calibrate(vlm, anchors, estimator=e, batch_size=64) for e in ("mean", "pc1")}
    states = capture_states(vlm, [i.prompt for i in qa[:32]], [i.image for i in qa[:32]])
    image_norm = states.norm(dim=-1).mean(dim=1)
    ratio = [
        f"{shifts['mean'].vectors[i].norm() / image_norm[i]:.2f}" for i in range(len(image_norm))
    ]
    print(f"|v_l| / |h_l(image)| per layer (mean estimator): {', '.join(ratio)}")
    last = vlm.num_layers - 1
    layer_sets = {
        "all": None,
        "last": (last,),
        "second half": tuple(range(vlm.num_layers // 2, vlm.num_layers)),
    }
    base_h, base_q = rates(vlm, harmful, None, options), rates(vlm, qa, None, options)
    n_h, n_q = len(harmful), len(qa)
    head = f"{'setting':<44} {'comply%':>7} {'refuse%':>7} {'degen%':>6} {'QA%':>5}"
    print(head)

    def show(name: str, h: Counter, q: Counter) -> None:
        print(
            f"{name:<44} {100 * h['compliance'] / n_h:>7.1f} {100 * h['refusal'] / n_h:>7.1f} "
            f"{100 * h['degenerate'] / n_h:>6.1f} {100 * q['correct'] / n_q:>5.1f}"
        )

    show("none", base_h, base_q)
    alphas = [float(a) for a in args.alphas.split(",")]
    grid = itertools.product(
        ("dataset:mean", "dataset:pc1", "sample"),
        layer_sets.items(),
        ("last", "text", "all"),
        alphas,
    )
    for method, (layer_name, layers), positions, alpha in grid:
        kind, _, estimator = method.partition(":")
        steering = Intervention(
            kind,  # type: ignore[arg-type]
            alpha=alpha,
            positions=positions,
            layers=layers,  # type: ignore[arg-type]
            shift=shifts[estimator] if estimator else None,
        )
        name = f"{method} layers={layer_name} {positions} a={alpha:g}"
        show(name, rates(vlm, harmful, steering, options), rates(vlm, qa, steering, options))
    print("diagnostic: shift the prompt only (generated tokens left alone)")
    for method, (layer_name, layers), alpha in itertools.product(
        ("dataset:mean", "sample"), list(layer_sets.items())[:2], (0.25, 1.0)
    ):
        kind, _, estimator = method.partition(":")
        steering = Intervention(
            kind,  # type: ignore[arg-type]
            alpha=alpha,
            positions="last",
            layers=layers,  # type: ignore[arg-type]
            shift=shifts[estimator] if estimator else None,
            generated=False,
        )
        name = f"{method} layers={layer_name} last a={alpha:g} prompt-only"
        show(name, rates(vlm, harmful, steering, options), rates(vlm, qa, steering, options))


if __name__ == "__main__":
    main()
