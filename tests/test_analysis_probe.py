"""The scene probe: a cross-validated linear read-out of what the image shows, per layer."""

from __future__ import annotations

import numpy as np
import pytest

from cmrm.analysis.probe import collect_states, probe_accuracy, scene_probes
from cmrm.base.errors import ConfigError
from cmrm.calibration.estimate import calibrate
from cmrm.data import load_items
from cmrm.interventions.value import Intervention
from cmrm.models import load_bundled


def test_probe_reads_a_separable_label_and_not_a_shuffled_one() -> None:
    rng = np.random.default_rng(0)
    labels = ["red", "green", "blue"] * 30
    column = {"red": 0, "green": 1, "blue": 2}
    states = rng.normal(size=(90, 16))
    for row, colour in enumerate(labels):
        states[row, column[colour]] += 6.0
    assert probe_accuracy(states, labels) > 0.95
    shuffled = list(rng.permutation(labels))
    noise = rng.normal(size=(90, 16))
    assert probe_accuracy(noise, shuffled) < 0.6
    with pytest.raises(ConfigError, match="at least 2 items"):
        probe_accuracy(states[:4], ["a", "a", "a", "b"])


def test_scene_probes_on_the_toy_organism_and_an_erasing_intervention() -> None:
    vlm = load_bundled("organism")
    items = [i for i in load_items("organism:val-image-qa", limit=120) if i.category == "colour"]
    layers = [0, vlm.num_layers - 1]
    (clean,) = scene_probes(vlm, items, layers)
    assert clean.topic == "colour" and clean.n == len(items) and clean.classes >= 2
    assert set(clean.accuracy) == set(layers)
    assert max(clean.accuracy.values()) > clean.chance + 0.2, clean
    # the probe reads the steered states: alpha 0 changes nothing, a real shift changes them
    shift = calibrate(vlm, load_items("organism:anchor", limit=16))
    plain = collect_states(vlm, items[:8], layers)
    zero = collect_states(vlm, items[:8], layers, Intervention("dataset", alpha=0.0, shift=shift))
    moved = collect_states(vlm, items[:8], layers, Intervention("dataset", alpha=4.0, shift=shift))
    assert np.array_equal(plain, zero) and not np.allclose(plain[-1], moved[-1])
    steered = scene_probes(vlm, items, layers, Intervention("dataset", alpha=4.0, shift=shift))
    assert steered[0].n == clean.n and all(0 <= a <= 1 for a in steered[0].accuracy.values())
    with pytest.raises(ConfigError, match="no item has an image"):
        scene_probes(vlm, load_items("organism:harmful-text", limit=4), layers)
