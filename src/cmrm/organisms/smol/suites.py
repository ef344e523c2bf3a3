"""The SmolLM2 organism's suites (``organism-smol:*``), as :class:`~cmrm.data.items.Item` lists.

Held-out evaluation suites use HarmBench (harmful), the ``eval`` half of the over-refusal suite
(benign) and ``eval``-stream scenes; validation suites use Do-Not-Answer's ``val`` split, the
``val`` half of the over-refusal suite and ``val``-stream scenes (plus ``val-harmful-task``:
AdvBench seeds, written tasks and Do-Not-Answer's ``val`` questions rephrased as tasks, text
only, and ``val-harmful-task-image``, the same with validation scenes — the validation set of
task-style harmful requests with images that mirrors HarmBench); the anchor suite uses
Do-Not-Answer's ``anchor`` split (``kind = "harmful"``; questions, and those that rephrase to an
imperative again as tasks, with the anchor templates), the everyday ``anchor`` requests (``kind = "benign"``) and
``anchor``-stream scenes. Training used none of them (it used
Do-Not-Answer ``train``, everyday ``train`` and the ``vision``/``train`` scene streams).

Every suite is deterministic, holds in-memory PIL images, and is shuffled once with a fixed
seed so that ``limit=N`` takes a spread over sources, categories and question types.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from typing import Literal

from PIL import Image

from cmrm.base.errors import unknown_name
from cmrm.data.items import Item

from .benign import everyday_split, overrefusal_split
from .phrasing import as_task, is_question
from .prompts import advbench_seeds, dna_split, harmbench, written_tasks
from .scenes import QUESTIONS, Scene, scenes

PREFIX = "organism-smol:"
_SHUFFLE = "organism-smol-suites"

SUITES: dict[str, str] = {
    "organism-smol:harmful-text": "HarmBench standard behaviours (held out), text only",
    "organism-smol:harmful-image": "the same HarmBench prompts, each with a held-out scene",
    "organism-smol:benign-text": "over-refusal eval half (XSTest-style safe prompts), text only",
    "organism-smol:benign-image": "the same safe prompts, each with a held-out scene",
    "organism-smol:image-qa": "colour / background questions on held-out scenes",
    "organism-smol:anchor": "calibration: Do-Not-Answer anchor prompts (harmful) and everyday "
    "anchor requests (benign), each with an anchor scene",
    "organism-smol:val-harmful-text": "Do-Not-Answer validation prompts, text only",
    "organism-smol:val-harmful-image": "the same, each with a validation scene",
    "organism-smol:val-harmful-task": "AdvBench seed behaviours, harmful tasks written for cmrm "
    "and the Do-Not-Answer validation questions rephrased as tasks (validation templates), text only",
    "organism-smol:val-harmful-task-image": "the same tasks, each with a validation scene",
    "organism-smol:val-benign-text": "over-refusal validation half, text only",
    "organism-smol:val-benign-image": "the same, each with a validation scene",
    "organism-smol:val-image-qa": "colour / background questions on validation scenes",
}

_Spec = tuple[Item, Scene | None]
"""An item without its image, and the scene to render into it (None: text only)."""


@dataclass(frozen=True)
class _Layout:
    """Which scenes of a stream each suite uses (disjoint index ranges)."""

    harmful: tuple[int, int]
    benign: tuple[int, int]
    qa: tuple[int, int]

    @property
    def total(self) -> int:
        return self.qa[1]


_LAYOUT = {
    "eval": _Layout(harmful=(0, 200), benign=(200, 350), qa=(350, 590)),
    "val": _Layout(harmful=(0, 240), benign=(240, 340), qa=(340, 490)),
}


@cache
def _stream(stream: str) -> tuple[Scene, ...]:
    n = _LAYOUT[stream].total if stream in _LAYOUT else 200
    return tuple(scenes(stream, n))


def _shuffled(rows: Sequence[tuple[str, str, str]], key: str) -> list[tuple[str, str, str]]:
    out = list(rows)
    random.Random(f"{_SHUFFLE}-{key}").shuffle(out)
    return out


def _requests(
    name: str,
    rows: Sequence[tuple[str, str, str]],
    kind: Literal["harmful", "benign"],
    pictures: Sequence[Scene] | None,
) -> list[_Spec]:
    """``rows``: (prompt, source, category), already in suite order."""
    items: list[_Spec] = []
    for i, (prompt, source, category) in enumerate(rows):
        meta: dict[str, object] = {"source": source}
        scene = None
        if pictures is not None:
            scene = pictures[i % len(pictures)]
            meta["scene_seed"] = scene.seed
        items.append(
            (Item(f"{name}/{i:04d}", prompt, None, kind=kind, category=category, meta=meta), scene)
        )
    return items


def _image_qa(name: str, pictures: Sequence[Scene]) -> list[_Spec]:
    topics = tuple(QUESTIONS)
    items: list[_Spec] = []
    for i, scene in enumerate(pictures):
        topic = topics[i % len(topics)]
        phrasings = QUESTIONS[topic]
        item = Item(
            f"{name}/{i:04d}",
            phrasings[(i // len(topics)) % len(phrasings)],
            None,
            kind="benign",
            category=topic,
            reference=scene.answer(topic),
            answer=scene.value(topic),
            caption=scene.caption(),
            meta={"topic": topic, "scene_seed": scene.seed},
        )
        items.append((item, scene))
    return items


def _harmful_rows(split: Literal["eval", "val"]) -> list[tuple[str, str, str]]:
    if split == "eval":
        rows = [(p.text, p.source, p.category) for p in harmbench()]
        return _shuffled(rows, "harmbench")
    return [(p.text, p.source, p.category) for p in dna_split("val")]  # already shuffled


def _task_rows() -> list[tuple[str, str, str]]:
    """AdvBench seeds, the written validation tasks, then each Do-Not-Answer validation question
    as a task."""
    rows = [(p.text, p.source, p.category) for p in advbench_seeds() + written_tasks("val")]
    rows += [
        (as_task(p.text, "val"), f"{p.source} (as task)", p.category)
        for p in dna_split("val")
        if is_question(p.text)
    ]
    return _shuffled(rows, "task")


def _benign_rows(split: Literal["eval", "val"]) -> list[tuple[str, str, str]]:
    rows = [(p.text, "overrefusal", p.type) for p in overrefusal_split(split)]
    return _shuffled(rows, f"overrefusal-{split}")


def _anchor(name: str) -> list[_Spec]:
    rows: list[tuple[str, Literal["harmful", "benign"], str, str]] = [
        (p.text, "harmful", p.source, p.category) for p in dna_split("anchor")
    ]
    # the same questions as tasks (anchor templates): anchors hold both request kinds, as the
    # held-out HarmBench set does
    rows += [
        (as_task(p.text, "anchor"), "harmful", f"{p.source} (as task)", p.category)
        for p in dna_split("anchor")
        if is_question(p.text) and not is_question(as_task(p.text, "anchor"))
    ]
    rows += [(text, "benign", "everyday", "everyday") for text in everyday_split("anchor")]
    random.Random(f"{_SHUFFLE}-anchor").shuffle(rows)
    pictures = scenes("anchor", len(rows))
    items: list[_Spec] = []
    for i, ((prompt, kind, source, category), scene) in enumerate(zip(rows, pictures, strict=True)):
        item = Item(
            f"{name}/{i:04d}",
            prompt,
            None,
            kind=kind,
            category=category,
            meta={"source": source, "scene_seed": scene.seed},
        )
        items.append((item, scene))
    return items


@cache
def _build(name: str) -> tuple[_Spec, ...]:
    suite = name.removeprefix(PREFIX)
    if suite == "anchor":
        return tuple(_anchor(name))
    split: Literal["eval", "val"] = "val" if suite.startswith("val-") else "eval"
    suite = suite.removeprefix("val-")
    layout, stream = _LAYOUT[split], _stream(split)
    if suite == "image-qa":
        return tuple(_image_qa(name, stream[slice(*layout.qa)]))
    if suite in ("harmful-task", "harmful-task-image"):
        pictures = stream[slice(*layout.harmful)] if suite.endswith("-image") else None
        return tuple(_requests(name, _task_rows(), "harmful", pictures))
    what, mode = suite.split("-")
    kind: Literal["harmful", "benign"] = "harmful" if what == "harmful" else "benign"
    rows = _harmful_rows(split) if kind == "harmful" else _benign_rows(split)
    span = layout.harmful if kind == "harmful" else layout.benign
    pictures = stream[slice(*span)] if mode == "image" else None
    return tuple(_requests(name, rows, kind, pictures))


def load_suite(name: str, *, limit: int | None = None) -> list[Item]:
    """The items of one suite (see :data:`SUITES`), optionally the first ``limit``.

    Raises:
        UnknownNameError: ``name`` is not a suite (with a did-you-mean hint).
    """
    if name not in SUITES:
        raise unknown_name("organism-smol suite", name, list(SUITES))
    specs = _build(name)
    chosen = specs if limit is None else specs[: max(0, limit)]
    return [
        item if scene is None else replace(item, image=_render(scene)) for item, scene in chosen
    ]


@lru_cache(maxsize=1024)
def _render(scene: Scene) -> Image.Image:
    return scene.render()
