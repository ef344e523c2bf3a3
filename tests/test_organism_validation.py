"""The organism's validation suites: disjoint from the anchor and evaluation suites in requests
and images, built from training pairs and a stream of their own, and registered by name."""

from __future__ import annotations

import hashlib

from cmrm.data import load_items
from cmrm.data.items import Item
from cmrm.organisms.toy import ANCHOR_SUITE, EVAL_SUITES, SUITES, VALIDATION_SUITES, load_suite
from cmrm.organisms.toy import grammar as g
from cmrm.organisms.toy.scenes import scenes


def _digest(item: Item) -> str | None:
    if item.image is None:
        return None
    return hashlib.sha256(item.image.tobytes()).hexdigest()  # type: ignore[union-attr]


def _pairs(items: list[Item]) -> set[tuple[object, object]]:
    return {(i.meta["verb"], i.meta["object"]) for i in items if "verb" in i.meta}


def test_roles_partition_the_one_list() -> None:
    assert set(VALIDATION_SUITES) == {
        "organism:val-harmful-image",
        "organism:val-harmful-text",
        "organism:val-benign-image",
        "organism:val-image-qa",
    }
    assert len(EVAL_SUITES) == 6 and ANCHOR_SUITE == "organism:anchor"
    assert sorted([*EVAL_SUITES, ANCHOR_SUITE, *VALIDATION_SUITES]) == sorted(SUITES)


def test_validation_is_disjoint_from_anchor_and_evaluation() -> None:
    held = [load_suite(n) for n in (*EVAL_SUITES, ANCHOR_SUITE)]
    held_prompts = {i.prompt for items in held for i in items if "verb" in i.meta}
    held_pairs = set().union(*(_pairs(items) for items in held))
    held_images = {_digest(i) for items in held for i in items} - {None}
    train = {(v, o) for kind in ("harmful", "benign") for v, o in g.combos(kind, "train")}  # type: ignore[arg-type]
    train_images = {hashlib.sha256(s.render().tobytes()).hexdigest() for s in scenes("train", 400)}
    for name in VALIDATION_SUITES:
        items = load_suite(name)
        assert len(items) == 300 and len({i.id for i in items}) == 300, name
        assert load_items(name, limit=5) == items[:5]  # the registry serves the same items
        pairs = _pairs(items)
        assert pairs <= train and not pairs & held_pairs, name
        assert not {i.prompt for i in items if "verb" in i.meta} & held_prompts, name
        images = {_digest(i) for i in items} - {None}
        assert not images & held_images and not images & train_images, name
        assert (len(images) > 0) == (not name.endswith("-text")), name
    qa = load_suite("organism:val-image-qa")
    assert {i.category for i in qa} == {"colour", "shape"} and all(i.answer for i in qa)


def test_adding_validation_left_the_evaluation_suites_as_they_were() -> None:
    first = load_suite("organism:harmful-image", limit=3)
    assert [i.id for i in first] == [f"organism:harmful-image/{n:04d}" for n in range(3)]
    assert [i.meta["scene_seed"] for i in first] == [s.seed for s in scenes("eval", 400)[:15:7]]
