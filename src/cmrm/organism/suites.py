"""The organism's evaluation and calibration suites, as :class:`~cmrm.items.Item` lists.

All suites are deterministic (fixed seeds) and hold in-memory PIL images. Evaluation suites use
the ``eval`` verb-object split and the ``eval`` image stream; the anchor (calibration) suite uses
the ``anchor`` split and the ``anchor`` image stream; training used neither (see
:mod:`cmrm.organism.grammar` and :mod:`cmrm.organism.scenes`). Requests are shuffled once with a
fixed seed, so any ``limit`` takes a spread over verbs, objects and templates.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Literal

from cmrm.errors import unknown_name
from cmrm.items import Item

from . import grammar as g
from .scenes import blank_image, scenes

SUITES: dict[str, str] = {
    "organism:harmful-text": "held-out harmful requests, text only",
    "organism:harmful-image": "held-out harmful requests, each with a held-out scene image",
    "organism:harmful-blank": "held-out harmful requests, each with a white blank image",
    "organism:benign-text": "held-out benign requests, text only (over-refusal)",
    "organism:benign-image": "held-out benign requests, each with a held-out scene image",
    "organism:image-qa": "colour and shape questions about held-out scene images",
    "organism:anchor": "calibration set: harmful and benign requests with images, disjoint "
    "from every evaluation suite (other verb-object pairs, other images)",
}
EVAL_IMAGES = 400
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
    name: str, kind: Literal["harmful", "benign"], image: Literal["none", "scene", "blank"]
) -> list[Item]:
    pics = scenes("eval", EVAL_IMAGES) if image == "scene" else []
    items = []
    for i, (template, question, verb, obj) in enumerate(_shuffled(kind, "eval")):
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


def _image_qa(name: str) -> list[Item]:
    items = []
    for i, scene in enumerate(scenes("eval", EVAL_IMAGES)[:300]):
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
    if name == "organism:image-qa":
        return tuple(_image_qa(name))
    if name == "organism:anchor":
        return tuple(_anchor(name))
    kind, image = name.removeprefix("organism:").split("-")
    mode = {"text": "none", "image": "scene", "blank": "blank"}[image]
    return tuple(_requests(name, kind, mode))  # type: ignore[arg-type]


def load_suite(name: str, *, limit: int | None = None) -> list[Item]:
    """The items of one organism suite (see :data:`SUITES`), optionally the first ``limit``.

    Raises:
        UnknownNameError: ``name`` is not in :data:`SUITES` (with a did-you-mean hint).
    """
    if name not in SUITES:
        raise unknown_name("organism suite", name, list(SUITES))
    items = list(_build(name))
    return items if limit is None else items[: max(0, limit)]
