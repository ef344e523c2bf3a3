"""How much of what the image shows survives an intervention: a linear probe on the states.

For image questions whose answer is a property of the scene (organism-smol's ``colour`` and
``background`` questions: the shape's colour, the background's colour), the decoder's state at
the last prompt token either still carries the answer or it does not. A multinomial logistic
regression (scikit-learn), cross-validated over items, reads the answer from the states at each
chosen layer, without an intervention and under one; the drop in accuracy is how much of the
scene the intervention erased at that layer (chance: the most frequent answer's share).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from ..base.errors import ConfigError
from ..data.images import load_image
from ..data.items import Item
from ..interventions.value import Intervention
from ..models.vlm import VLM

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeResult:
    """Cross-validated accuracy of reading one scene property from the states, per layer."""

    topic: str
    n: int
    classes: int
    chance: float
    accuracy: dict[int, float]
    """Layer -> mean accuracy over the folds."""

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "n": self.n,
            "classes": self.classes,
            "chance": self.chance,
            "accuracy": {str(k): v for k, v in self.accuracy.items()},
        }


def collect_states(
    vlm: VLM,
    items: Sequence[Item],
    layers: Sequence[int],
    intervention: Intervention | None = None,
    batch_size: int = 16,
    show_progress: bool = False,
) -> np.ndarray:
    """``[n_layers, n_items, hidden]`` states at the last prompt token (under ``intervention``)."""
    from ..calibration.capture import capture_states
    from ..interventions.apply import intervene

    chunks = []
    for start in tqdm(
        range(0, len(items), batch_size), desc="probe states", disable=not show_progress
    ):
        chunk = items[start : start + batch_size]
        prompts = [item.prompt for item in chunk]
        images = [load_image(item.image) for item in chunk]
        with intervene(vlm, intervention, prompts, images):
            chunks.append(capture_states(vlm, prompts, images, layers=list(layers)).numpy())
    return np.concatenate(chunks, axis=1)


def probe_accuracy(
    states: np.ndarray, labels: Sequence[str], folds: int = 5, seed: int = 0
) -> float:
    """Mean stratified ``folds``-fold accuracy of a logistic regression from ``states`` [n, h]."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    smallest = min(Counter(labels).values())
    k = min(folds, smallest)
    if k < 2:
        raise ConfigError(
            f"probe: every answer needs at least 2 items for cross-validation, got {smallest}; "
            "give more items"
        )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(model, states, list(labels), cv=split)))


def scene_probes(
    vlm: VLM,
    items: Sequence[Item],
    layers: Sequence[int],
    intervention: Intervention | None = None,
    batch_size: int = 16,
    show_progress: bool = False,
) -> list[ProbeResult]:
    """One :class:`ProbeResult` per topic (``category``) of the items with an answer and an image.

    Raises:
        ConfigError: no item has both an image and an answer.
    """
    usable = [i for i in items if i.image is not None and i.answer and i.category]
    if not usable:
        raise ConfigError(
            "probe: no item has an image, an answer and a category (topic); use image questions "
            "such as organism-smol:val-image-qa"
        )
    states = collect_states(vlm, usable, layers, intervention, batch_size, show_progress)
    by_topic: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(usable):
        by_topic[str(item.category)].append(index)
    out = []
    for topic, rows in sorted(by_topic.items()):
        labels = [str(usable[r].answer) for r in rows]
        counts = Counter(labels)
        accuracy = {
            layer: probe_accuracy(states[li, rows], labels) for li, layer in enumerate(layers)
        }
        chance = max(counts.values()) / len(labels)
        out.append(ProbeResult(topic, len(rows), len(counts), chance, accuracy))
        logger.info("probe %s: chance %.2f, accuracy %s", topic, chance, accuracy)
    return out
