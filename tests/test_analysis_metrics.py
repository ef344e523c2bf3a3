"""Gap metrics on constructed states whose answer is known, and the streaming accumulator."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cmrm.analysis.accumulator import GapAccumulator
from cmrm.analysis.metrics import (
    centroid_cosine,
    centroid_distance,
    gap_closed,
    paired_cosine,
    probe_accuracy,
    spread,
)
from cmrm.analysis.results import GapReport
from cmrm.base.errors import CmrmError

HIDDEN = 16


def groups(n: int, offset: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Text states ~ N(0, I); image = text + a noise-free planted offset along one axis."""
    rng = np.random.default_rng(seed)
    text = rng.normal(size=(n, HIDDEN))
    shift = np.zeros(HIDDEN)
    shift[0] = offset
    return text, text + shift


def test_spread_is_rms_distance_to_the_centroid() -> None:
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 3.0], [0.0, -3.0]])
    assert spread(x) == pytest.approx(math.sqrt((1 + 1 + 9 + 9) / 4))


def test_planted_offset_gives_exact_distance_and_separable_probe() -> None:
    text, image = groups(200, offset=6.0)
    raw, normalised = centroid_distance(text, image)
    assert raw == pytest.approx(6.0)
    assert normalised == pytest.approx(6.0 / spread(text))
    assert spread(text) == pytest.approx(math.sqrt(HIDDEN), rel=0.1)
    result = probe_accuracy(text, image, text_groups=range(200), other_groups=range(200))
    assert result.accuracy > 0.97
    assert result.folds == 5
    assert paired_cosine(text, image) < 0.9  # an offset of 1.5 spreads turns the states


def test_identical_distributions_give_chance_and_no_distance() -> None:
    rng = np.random.default_rng(1)
    text, image = rng.normal(size=(300, HIDDEN)), rng.normal(size=(300, HIDDEN))
    _, normalised = centroid_distance(text, image)
    assert normalised < 0.1  # ~ sqrt(2 / 300) for two independent means
    result = probe_accuracy(text, image)
    assert 0.4 < result.accuracy < 0.6


def test_probe_on_tiny_data_is_nan_with_a_reason() -> None:
    text, image = groups(1, offset=3.0)
    result = probe_accuracy(text, image)
    assert math.isnan(result.accuracy)
    assert "at least 2 rows" in result.note
    assert probe_accuracy(*groups(3, offset=3.0)).folds == 3


def test_cosines_and_gap_closed() -> None:
    text = np.array([[1.0, 0.0], [2.0, 0.0]])
    other = np.array([[0.0, 1.0], [2.0, 2.0]])
    assert paired_cosine(text, other) == pytest.approx((0 + math.sqrt(0.5)) / 2)
    assert centroid_cosine(text, other) == pytest.approx(1.0 / math.hypot(1.0, 1.5))
    assert gap_closed(4.0, 1.0) == pytest.approx(0.75)
    assert math.isnan(gap_closed(0.0, 1.0))
    with pytest.raises(CmrmError, match="same shape"):
        paired_cosine(text, other[:1])


def stream(acc: GapAccumulator, batches: dict[str, np.ndarray], chunk: int) -> None:
    n = batches["text"].shape[1]
    for start in range(0, n, chunk):
        ids = np.arange(start, min(n, start + chunk))
        for variant, states in batches.items():
            acc.add(variant, states[:, ids], ids=ids)


def layered(n: int, layers: int, seed: int = 0) -> dict[str, np.ndarray]:
    """[layers, n, hidden] states with a large common component and a layer-growing offset."""
    rng = np.random.default_rng(seed)
    common = rng.normal(scale=50.0, size=(layers, 1, HIDDEN))  # LLM states have huge means
    text = common + rng.normal(size=(layers, n, HIDDEN))
    offset = np.zeros((layers, 1, HIDDEN))
    offset[:, 0, 1] = np.arange(layers) + 0.5
    image = text + offset + 0.3 * rng.normal(size=(layers, n, HIDDEN))
    return {"text": text, "image": image, "steered": image - offset}


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_streaming_equals_batch_definitions(chunk: int) -> None:
    data = layered(n=64, layers=4)
    acc = GapAccumulator(range(4), max_samples=64, seed=0)
    stream(acc, data, chunk)
    report = acc.report(steered="steered")
    for layer in range(4):
        t, v = data["text"][layer], data["image"][layer]
        row = report.layer(layer)
        gap = row.get("image")
        raw, normalised = centroid_distance(t, v)
        assert gap.distance == pytest.approx(raw, rel=1e-9)
        assert gap.normalised_distance == pytest.approx(normalised, rel=1e-9)
        assert row.text_spread == pytest.approx(spread(t), rel=1e-9)
        assert gap.spread == pytest.approx(spread(v), rel=1e-9)
        assert gap.paired_cosine == pytest.approx(paired_cosine(t, v), rel=1e-9)
        assert gap.centroid_cosine == pytest.approx(centroid_cosine(t, v), rel=1e-9)
        steered = row.get("steered")
        assert row.gap_closed == pytest.approx(1 - steered.distance / raw, rel=1e-9)
    # every query is kept (max_samples == n), so the probe matches the batch probe exactly
    # (up to float16 storage): grouped folds, same seed
    probe = probe_accuracy(
        data["text"][3], data["image"][3], text_groups=range(64), other_groups=range(64)
    )
    assert report.layer(3).get("image").probe_accuracy == pytest.approx(probe.accuracy, abs=0.02)
    assert report.largest_gap_layer == 3


def test_chunking_does_not_change_the_report() -> None:
    data = layered(n=50, layers=3)
    reports = []
    for chunk in (3, 50):
        acc = GapAccumulator(range(3), max_samples=20, seed=5)
        stream(acc, data, chunk)
        reports.append(acc.report().to_json())
    a, b = reports
    for row_a, row_b in zip(a["layers"], b["layers"], strict=True):
        gap_a, gap_b = row_a["variants"]["image"], row_b["variants"]["image"]
        assert gap_a["distance"] == pytest.approx(gap_b["distance"], rel=1e-9)
        # the reservoir keeps the same 20 queries whatever the batching
        assert gap_a["probe_accuracy"] == gap_b["probe_accuracy"]


def test_memory_is_bounded_by_the_reservoir() -> None:
    layers, cap = 4, 16
    sizes = []
    for n in (64, 640):
        acc = GapAccumulator(range(layers), max_samples=cap)
        stream(acc, layered(n=n, layers=layers), chunk=32)
        sizes.append(acc.nbytes)
        ids, kept = acc.samples("image", 2)
        assert kept.shape == (cap, HIDDEN)
        text_ids, _ = acc.samples("text", 2)
        assert list(ids) == list(text_ids)  # the same queries in every variant
    assert sizes[0] == sizes[1]
    per_variant = layers * cap * HIDDEN * 2 + layers * HIDDEN * 8
    assert sizes[1] < 3 * per_variant + 32 * layers * HIDDEN * 8 + 10_000


def test_shift_from_the_same_data_closes_most_of_the_gap() -> None:
    data = layered(n=80, layers=3, seed=2)
    shift = (data["text"] - data["image"]).mean(axis=1, keepdims=True)  # mean(text - image)
    acc = GapAccumulator(range(3), max_samples=80)
    stream(
        acc,
        {"text": data["text"], "image": data["image"], "image+cmrm": data["image"] + shift},
        chunk=16,
    )
    report = acc.report(steered="image+cmrm")
    for row in report.layers:
        assert row.gap_closed > 0.9
        assert (
            row.get("image+cmrm").normalised_distance < 0.1 * row.get("image").normalised_distance
        )
    # an offset of 2.5 sd along one axis: the best classifier is right ~89 % of the time
    assert report.layer(2).get("image").probe_accuracy > 0.8
    assert report.layer(2).get("image+cmrm").probe_accuracy < 0.7  # only the 0.3 sd noise is left


def test_report_round_trips_through_json() -> None:
    acc = GapAccumulator([0, 1], max_samples=1)
    stream(acc, {k: v for k, v in layered(n=4, layers=2).items() if k != "steered"}, chunk=2)
    report = acc.report(meta={"model": "x"})
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert data["layers"][0]["variants"]["image"]["probe_accuracy"] is None  # 1 sample: no probe
    back = GapReport.from_json(data)
    assert back.layer(1).get("image").distance == report.layer(1).get("image").distance
    assert math.isnan(back.layer(1).get("image").probe_accuracy)


def test_errors_name_the_problem() -> None:
    acc = GapAccumulator([0, 1])
    with pytest.raises(CmrmError, match="n_layers=2"):
        acc.add("text", np.zeros((3, 2, HIDDEN)))
    with pytest.raises(CmrmError, match="text' states first"):
        acc.add("image", np.zeros((2, 2, HIDDEN)))
    acc.add("text", np.zeros((2, 2, HIDDEN)), ids=[0, 1])
    with pytest.raises(CmrmError, match=r"rows \[5\]"):
        acc.add("image", np.zeros((2, 1, HIDDEN)), ids=[5])
    with pytest.raises(CmrmError, match="at least one image variant"):
        acc.report()
