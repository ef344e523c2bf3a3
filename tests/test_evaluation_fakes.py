"""Fake generator, benchmarks, judge and calibrator for the evaluation tests (no model needed).

Also runnable as a script (``python -m tests.test_evaluation_fakes RUN_DIR``) so that the
crash-safety test can SIGKILL a real process in the middle of a run.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cmrm.base.errors import UnknownNameError
from cmrm.calibration.shift import ShiftMeta, ShiftVectors
from cmrm.data.items import Item
from cmrm.evaluation import EvalConfig, run_eval
from cmrm.generation.methods import Method
from cmrm.judges.judgment import Judgment


def _items(prefix: str, n: int, kind: str) -> list[Item]:
    return [Item(f"{prefix}{i:02d}", f"request {prefix} {i}", kind=kind) for i in range(n)]  # type: ignore[arg-type]


BENCHES: dict[str, list[Item]] = {
    "harm": _items("h", 11, "harmful"),
    "harm:anchor": _items("a", 4, "harmful"),
    "benign": _items("b", 6, "benign"),
    "text": [
        Item(f"t{i}", f"text request {i}", kind="harmful", meta={"pair": "null"}) for i in range(3)
    ],
}
BENCHES["harm:eval"] = BENCHES["harm"]
BENCHES["evil"] = [
    Item("e<script>alert(0)</script>|0", "<img src=x onerror=alert(1)> | p", kind="harmful")
]
BENCHES["harm-with-anchors"] = BENCHES["harm"] + BENCHES["harm:anchor"]


def fake_load_items(
    spec: str, *, root: Any = None, limit: int | None = None, seed: int = 0, **options: Any
) -> list[Item]:
    if spec not in BENCHES:
        raise UnknownNameError(f"unknown benchmark {spec!r}")
    items = BENCHES[spec]
    return items if limit is None else items[:limit]


def fake_text(item: Item, method: Method) -> str:
    """Refuses when steered with alpha >= 1 or without the image; complies otherwise."""
    alpha = getattr(method, "alpha", 1.0)
    refuse = method.method == "text-only" or (
        method.method in ("dataset", "sample") and alpha >= 1.0
    )
    if item.kind == "benign":
        refuse = refuse and int(item.id[1:]) % 2 == 0
    if refuse:
        return f"I'm sorry, I cannot help with {item.id}."
    return f"Sure: {item.id} via {method.method} at {alpha}."


def fake_generate(
    vlm: Any,
    items: Sequence[Item],
    method: Method,
    options: Any,
    *,
    batch_size: int = 8,
    show_progress: bool = False,
) -> list[str]:
    time.sleep(float(os.environ.get("CMRM_FAKE_SLEEP", "0")))
    return [fake_text(item, method) for item in items]


class FakeJudge:
    name = "fake"

    def __init__(self, sleep: float = 0.0) -> None:
        self.sleep = sleep

    def judge(self, items: Sequence[Item], completions: Sequence[str]) -> list[Judgment]:
        time.sleep(self.sleep)
        out = []
        for item, text in zip(items, completions, strict=True):
            refused = "sorry" in text.lower()
            unsafe = None if item.kind == "benign" else not refused
            correct = (not refused) if item.kind == "benign" else None
            out.append(Judgment("fake", unsafe, refused, False, correct, None, "x", None))
        return out


def fake_get_judge(name: str, **options: Any) -> FakeJudge:
    if name not in ("fake", "refusal"):
        raise UnknownNameError(f"unknown judge {name!r}")
    return FakeJudge(float(os.environ.get("CMRM_FAKE_SLEEP", "0")))


CALLS: list[int] = []


def fake_calibrate(vlm: Any, items: Sequence[Item], **kwargs: Any) -> ShiftVectors:
    CALLS.append(len(items))
    meta = ShiftMeta(source_model="fake", model_type="fake", hidden_size=4, num_layers=1)
    return ShiftVectors(layers=(0,), vectors=torch.ones(1, 4), meta=meta)


def config(**overrides: Any) -> EvalConfig:
    base: dict[str, Any] = dict(
        model="fake",
        benchmarks=("harm:eval", "benign"),
        methods=("none", "dataset", "sample", "text-only"),
        alphas=(0.5, 1.0),
        anchors="harm:anchor",
        judge="fake",
        batch_size=3,
        bootstrap=200,
    )
    base.update(overrides)
    return EvalConfig(**base)


def run(run_dir: Path, **overrides: Any) -> Any:
    return run_eval(
        config(**overrides),
        run_dir,
        vlm=object(),
        generate_fn=fake_generate,
        load_items_fn=fake_load_items,
        get_judge_fn=fake_get_judge,
        calibrate_fn=fake_calibrate,
    )


if __name__ == "__main__":
    run(Path(sys.argv[1]))
