"""Batches by prompt length (same greedy answers, original order) and ``--batch-size auto``."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch

from cmrm.base.errors import CmrmError, ConfigError
from cmrm.data.images import load_image
from cmrm.evaluation import EvalConfig
from cmrm.generation.batching import (
    CPU_DEFAULT,
    length_key,
    length_order,
    parse_batch_size,
    resolve_batch_size,
    run_batches,
)
from cmrm.generation.generate import GenerationOptions, generate_batch, generate_items
from cmrm.interventions import Intervention
from cmrm.models import load_vlm
from cmrm.organisms.toy.suites import load_suite


def test_length_sorted_batches_answer_like_unsorted_ones() -> None:
    vlm = load_vlm("organism")
    items = [
        item
        for pair in zip(
            load_suite("organism:harmful-image", limit=5),
            load_suite("organism:benign-text", limit=5),
            strict=True,
        )
        for item in pair
    ]
    order = length_order(items, length_key(vlm))
    assert order != list(range(len(items)))  # the sort does reorder these rows
    assert [items[i].has_image for i in order] == sorted(i.has_image for i in items)
    options = GenerationOptions(max_new_tokens=8)
    steering = Intervention("sample", alpha=0.5)
    sorted_batches = generate_items(vlm, items, steering, options, batch_size=4)
    one_by_one = generate_items(vlm, items, steering, options, batch_size=1)
    unsorted: list[str] = []
    for start in range(0, len(items), 4):  # the batches as they were cut before sorting
        chunk = items[start : start + 4]
        images = [load_image(i.image) for i in chunk]
        unsorted += generate_batch(vlm, [i.prompt for i in chunk], images, steering, options)
    assert sorted_batches == one_by_one == unsorted
    assert len(set(sorted_batches)) > 2


def test_run_batches_returns_rows_in_batches_with_their_results() -> None:
    words = ["a b c", "a", "a b c d e", "a b", "a b c d"]
    items = [type("I", (), {"prompt": w, "has_image": False})() for w in words]
    seen = list(
        run_batches(
            items, 2, lambda batch, n: [b.prompt.upper() for b in batch], key=length_key(None)
        )
    )
    assert [[b.prompt for b in batch] for batch, _ in seen] == [
        ["a", "a b"],
        ["a b c", "a b c d"],
        ["a b c d e"],
    ]
    assert all(r == [b.prompt.upper() for b in batch] for batch, r in seen)


def test_auto_on_cpu_is_a_fixed_default(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cmrm.generation.batching"):
        assert resolve_batch_size("auto", "cpu") == CPU_DEFAULT
    assert "CPU default" in caplog.text
    assert resolve_batch_size(3, "cpu") == 3
    assert parse_batch_size("auto") == "auto" and parse_batch_size("12") == 12
    for bad in ("0", "eight", "1.5", "-2"):
        with pytest.raises(ConfigError, match="positive integer or 'auto'"):
            parse_batch_size(bad)
    with pytest.raises(ConfigError, match="positive integer or 'auto'"):
        EvalConfig(benchmarks=("x",), methods=("none",), batch_size="big")
    assert EvalConfig(benchmarks=("x",), methods=("none",), batch_size="auto").batch_size == "auto"


def _fits(limit: int, calls: list[int]) -> Any:
    def run(batch: list[int], size: int) -> list[int]:
        calls.append(len(batch))
        if len(batch) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory (batch too large)")
        return [2 * x for x in batch]

    return run


def test_auto_backs_off_on_out_of_memory_without_losing_rows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []
    with caplog.at_level(logging.WARNING, logger="cmrm.generation.batching"):
        out = list(run_batches(list(range(100)), "auto", _fits(5, calls), device="cuda"))
    assert [x for _, results in out for x in results] == [2 * x for x in range(100)]
    assert calls[:5] == [64, 32, 16, 8, 4] and set(calls[5:]) <= {4}
    assert "retrying these rows with batch size 4" in caplog.text
    with pytest.raises(CmrmError, match="pass a smaller --batch-size"):
        list(run_batches(list(range(10)), 8, _fits(5, []), device="cuda"))
    with pytest.raises(CmrmError, match="does not fit even one row"):
        list(run_batches(list(range(10)), "auto", _fits(0, []), device="cuda"))
