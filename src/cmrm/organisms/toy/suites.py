"""The organism's suites as :class:`~cmrm.data.items.Item` lists, built from :mod:`.catalog`.

All suites are deterministic (fixed seeds) and hold in-memory PIL images; :mod:`.catalog` says
which verb-object pairs and which image stream each one uses (and why validation suites use the
train pairs with a ``val`` image stream). Requests are shuffled once with a fixed seed, so any
``limit`` takes a spread over verbs, objects and templates.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Literal

from cmrm.base.errors import unknown_name
from cmrm.data.items import Item

from . import grammar as g
from .catalog import (
    ANCHOR_SUITE,
    CATALOG,
    EVAL_SUITES,
    SUITES,
    VALIDATION_SUITES,
    ImageMode,
)
from .scenes import blank_image, scenes

__all__ = ["ANCHOR_SUITE", "EVAL_SUITES", "SUITES", "VALIDATION_SUITES", "load_suite"]

EVAL_IMAGES = 400
"""Scenes drawn from an image stream (``eval`` or ``val``) for request and QA suites."""
_SHUFFLE_SEED = 20241011


def _shuffled(
    kind: Literal["harmful", "benign"], split: g.Split
) -> list[tuple[int, str, str, str]]:
    reqs = [
        (t % len(g.REQUEST_TEMPLATES), q, v, o)
        for t, (q, v, o) in enumerate(g.requests(kind, split))
    ]
    random.Random(f"{_SHUFFLE_SEED}-{kind}-{split}").shuffle(reqs)
    return reqs


def _requests(
    name: str,
    kind: Literal["harmful", "benign"],
    image: ImageMode,
    *,
    split: g.Split = "eval",
    stream: str = "eval",
    size: int | None = None,
) -> list[Item]:
    pics = scenes(stream, EVAL_IMAGES) if image == "scene" else []
    items = []
    for i, (template, question, verb, obj) in enumerate(_shuffled(kind, split)[:size]):
        meta: dict[str, object] = {"verb": verb, "object": obj, "template": template}
        picture = None
        if image == "scene":
            scene = pics[(i * 7 + (1 if kind == "benign" else 0)) % EVAL_IMAGES]
            picture = scene.render()
            meta["scene_seed"] = scene.seed
        elif image == "blank":
            picture = blank_image()
        items.append(
            Item(f"{name}/{i:04d}", question, picture, kind=kind, category=verb, meta=meta)
        )
    return items


def _image_qa(name: str, stream: str = "eval") -> list[Item]:
    items = []
    for i, scene in enumerate(scenes(stream, EVAL_IMAGES)[:300]):
        colour = i % 2 == 0
        questions = g.COLOUR_QUESTIONS if colour else g.SHAPE_QUESTIONS
        answer = scene.colour if colour else scene.shape
        items.append(
            Item(
                f"{name}/{i:04d}",
                questions[(i // 2) % len(questions)],
                scene.render(),
                kind="benign",
                category="colour" if colour else "shape",
                reference=g.colour_answer(answer) if colour else g.shape_answer(answer),
                answer=answer,
                caption=scene.describe(),
                meta={"scene_seed": scene.seed},
            )
        )
    return items


def _anchor(name: str) -> list[Item]:
    reqs = [("harmful", r) for r in _shuffled("harmful", "anchor")]
    reqs += [("benign", r) for r in _shuffled("benign", "anchor")]
    random.Random(f"{_SHUFFLE_SEED}-anchor").shuffle(reqs)
    pics = scenes("anchor", len(reqs))
    items = []
    for i, ((kind, (template, question, verb, obj)), scene) in enumerate(
        zip(reqs, pics, strict=True)
    ):
        meta = {"verb": verb, "object": obj, "template": template, "scene_seed": scene.seed}
        items.append(
            Item(
                f"{name}/{i:04d}",
                question,
                scene.render(),
                kind=kind,  # type: ignore[arg-type]
                category=verb,
                meta=meta,
            )
        )
    return items


@cache
def _build(name: str) -> tuple[Item, ...]:
    suite = CATALOG[name]
    if suite.content == "anchor":
        return tuple(_anchor(name))
    if suite.content == "image-qa":
        return tuple(_image_qa(name, suite.stream))
    assert suite.kind is not None, name
    return tuple(
        _requests(
            name, suite.kind, suite.image, split=suite.pairs, stream=suite.stream, size=suite.size
        )
    )


def load_suite(name: str, *, limit: int | None = None) -> list[Item]:
    """The items of one organism suite (see :data:`SUITES`), optionally the first ``limit``.

    Raises:
        UnknownNameError: ``name`` is not in :data:`SUITES` (with a did-you-mean hint).
    """
    if name not in SUITES:
        raise unknown_name("organism suite", name, list(SUITES))
    items = list(_build(name))
    return items if limit is None else items[: max(0, limit)]
