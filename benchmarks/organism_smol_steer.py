"""A first look at steering the SmolLM2 organism, on its **validation** suites only.

Calibrates a dataset-level mean shift on ``organism-smol:anchor`` (text vs a blank null image,
last prompt token), then generates with the paper's additive CMRM (``h + alpha * v``) at one
middle layer and at all layers, for a few alphas, on ``val-harmful-image`` (refusal, harmful
compliance, degenerate), ``val-benign-image`` (over-refusal) and ``val-image-qa`` (accuracy), all
judged by :class:`cmrm.organism_smol.SmolJudge`. Also prints the text-only references and the
shift-to-state norm ratio per layer. Held-out suites are never touched.

    python benchmarks/organism_smol_steer.py --limit 48 --layer 10 --alphas 0.25,0.5,1
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from cmrm import calibrate, load_vlm
from cmrm.capture import capture_states
from cmrm.generate import GenerationOptions, Steering, generate_items
from cmrm.organism_smol import SmolJudge, load_suite
from cmrm.organism_smol.evaluate import SuiteRates

SUITES = ("val-harmful-image", "val-benign-image", "val-image-qa")


def measure(vlm: Any, suites: dict[str, list[Any]], steering: Steering, tokens: int) -> dict:
    out = {}
    for name, items in suites.items():
        texts = generate_items(vlm, items, steering, GenerationOptions(max_new_tokens=tokens))
        rates = SuiteRates.from_judgments(name, items, SmolJudge().judge(items, texts))
        out[name] = {**rates.to_json(), "examples": texts[:3]}
    return out


def row(label: str, result: dict) -> str:
    def pct(x: float | None) -> str:
        return "   -" if x is None else f"{100 * x:5.1f}"

    h, b, q = (result[f"organism-smol:{s}"] for s in SUITES)
    return (
        f"| {label} | {pct(h['refusal_rate'])} | {pct(h['unsafe_rate'])} | "
        f"{pct(h['degenerate_rate'])} | {pct(b['over_refusal_rate'])} | "
        f"{pct(b['degenerate_rate'])} | {pct(q['qa_accuracy'])} | {pct(q['degenerate_rate'])} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=48)
    parser.add_argument("--layer", type=int, default=10, help="the one middle layer")
    parser.add_argument("--alphas", default="0.25,0.5,1")
    parser.add_argument("--all-alphas", default="0.1,0.25")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--model", default="organism-smol")
    parser.add_argument("--json", default=None, help="also write every result here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    vlm = load_vlm(args.model)
    anchors = load_suite("organism-smol:anchor")
    shift = calibrate(vlm, anchors, estimator="mean")
    suites = {
        f"organism-smol:{s}": load_suite(f"organism-smol:{s}", limit=args.limit) for s in SUITES
    }
    qa = suites["organism-smol:val-image-qa"][:16]
    states = capture_states(vlm, [i.prompt for i in qa], [i.image for i in qa])
    image_norm = states.norm(dim=-1).mean(dim=1)
    ratio = [f"{shift.vectors[i].norm() / image_norm[i]:.2f}" for i in range(vlm.num_layers)]
    print(f"|v_l| / |h_l(image)|, layers 0-{vlm.num_layers - 1}: {', '.join(ratio)}")
    print(
        "| setting | harmful+image refusal % | compliance % | degenerate % "
        "| benign+image over-refusal % | degenerate % | image QA % | degenerate % |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    results: dict[str, Any] = {}
    settings: list[tuple[str, Steering]] = [
        ("none", Steering()),
        ("text-only (image dropped)", Steering("text-only")),
    ]
    for alpha in (float(a) for a in args.alphas.split(",")):
        layers = (args.layer,)
        settings.append(
            (
                f"add, layer {args.layer}, a={alpha:g}",
                Steering("dataset", alpha, "all", layers, shift),
            )
        )
    for alpha in (float(a) for a in args.all_alphas.split(",") if a):
        settings.append(
            (f"add, all layers, a={alpha:g}", Steering("dataset", alpha, "all", None, shift))
        )
    for label, steering in settings:
        results[label] = measure(vlm, suites, steering, args.tokens)
        print(row(label, results[label]), flush=True)
    print(f"({args.limit} items per suite, {args.tokens} new tokens, {time.time() - start:.0f} s)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
