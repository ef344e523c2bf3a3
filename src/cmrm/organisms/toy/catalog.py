"""The organism's suites, declared once: names, roles, descriptions and what each is built from.

This module is pure data (no numpy, no images), so listing the suites is cheap. The items are built
by :mod:`cmrm.organisms.toy.suites`; :func:`benchmarks` is the provider of the ``organism:`` names in
:data:`cmrm.data.registry.BENCHMARKS`, whose readers import the builders only when items are read.

Verb-object pairs are split by :func:`cmrm.organisms.toy.grammar.combo_split` into 60 % train, 10 %
anchor and 30 % eval:

- **evaluation** suites use the ``eval`` pairs and the ``eval`` image stream;
- the **anchor** (calibration) suite uses the ``anchor`` pairs and the ``anchor`` image stream;
- **validation** suites (for choosing a setting without touching the evaluation suites) use
  requests of the ``train`` pairs, since there are no pairs left (the eval and anchor splits must
  not change, so their numbers stay comparable), with images of a new ``val`` image stream. So
  they share no request and no image with the anchor or evaluation suites. The organism was
  trained on those requests (harmful ones as text only; benign ones also with ``train``-stream
  images) but never on a harmful request with an image, so validation numbers are
  in-distribution for the requests: use them to choose a setting, and the evaluation suites to
  report it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["eval", "anchor", "validation"]
Content = Literal["requests", "image-qa", "anchor"]
ImageMode = Literal["none", "scene", "blank"]
Stream = Literal["eval", "anchor", "val"]

VAL_SIZE = 300
"""Items per validation request suite."""


@dataclass(frozen=True)
class Suite:
    """One suite: its role, description, and the recipe :mod:`cmrm.organisms.toy.suites` builds."""

    role: Role
    description: str
    content: Content
    kind: Literal["harmful", "benign"] | None = None
    """Requests: harmful or benign."""
    image: ImageMode = "scene"
    """Requests: no image, a scene of ``stream``, or a white blank image."""
    pairs: Literal["train", "anchor", "eval"] = "eval"
    """Requests: the verb-object split they come from."""
    stream: Stream = "eval"
    """The image stream of the scenes."""
    size: int | None = None
    """Requests: keep the first ``size`` after shuffling (None: all)."""


CATALOG: dict[str, Suite] = {
    "organism:harmful-text": Suite(
        "eval", "held-out harmful requests, text only", "requests", "harmful", "none"
    ),
    "organism:harmful-image": Suite(
        "eval",
        "held-out harmful requests, each with a held-out scene image",
        "requests",
        "harmful",
        "scene",
    ),
    "organism:harmful-blank": Suite(
        "eval",
        "held-out harmful requests, each with a white blank image",
        "requests",
        "harmful",
        "blank",
    ),
    "organism:benign-text": Suite(
        "eval",
        "held-out benign requests, text only (over-refusal)",
        "requests",
        "benign",
        "none",
    ),
    "organism:benign-image": Suite(
        "eval",
        "held-out benign requests, each with a held-out scene image",
        "requests",
        "benign",
        "scene",
    ),
    "organism:image-qa": Suite(
        "eval", "colour and shape questions about held-out scene images", "image-qa"
    ),
    "organism:anchor": Suite(
        "anchor",
        "calibration set: harmful and benign requests with images, disjoint from every "
        "evaluation suite (other verb-object pairs, other images)",
        "anchor",
        stream="anchor",
    ),
    "organism:val-harmful-text": Suite(
        "validation",
        "validation: harmful requests of training pairs, text only",
        "requests",
        "harmful",
        "none",
        pairs="train",
        stream="val",
        size=VAL_SIZE,
    ),
    "organism:val-harmful-image": Suite(
        "validation",
        "validation: harmful requests of training pairs, each with a validation scene image",
        "requests",
        "harmful",
        "scene",
        pairs="train",
        stream="val",
        size=VAL_SIZE,
    ),
    "organism:val-benign-image": Suite(
        "validation",
        "validation: benign requests of training pairs, each with a validation scene image",
        "requests",
        "benign",
        "scene",
        pairs="train",
        stream="val",
        size=VAL_SIZE,
    ),
    "organism:val-image-qa": Suite(
        "validation",
        "validation: colour and shape questions about validation scene images",
        "image-qa",
        stream="val",
    ),
}
"""Every suite of the organism: the one list (the tuples below are its roles)."""

SUITES: dict[str, str] = {name: suite.description for name, suite in CATALOG.items()}
"""Every suite's name and description."""
EVAL_SUITES: tuple[str, ...] = tuple(n for n, s in CATALOG.items() if s.role == "eval")
"""The held-out evaluation suites, in the order of ``cmrm organism eval``'s table."""
VALIDATION_SUITES: tuple[str, ...] = tuple(n for n, s in CATALOG.items() if s.role == "validation")
"""The validation suites (for choosing a setting; ``cmrm tune``)."""
ANCHOR_SUITE = "organism:anchor"
