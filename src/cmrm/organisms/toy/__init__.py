"""The model organism: a tiny LLaVA, trained offline, whose safety degrades under images.

A leaf: the core reaches it only through registry entries (the bundled model ``organism`` in
:data:`cmrm.models.registry.MODELS`, the suites ``organism:*`` in
:data:`cmrm.data.registry.BENCHMARKS`, served by :func:`cmrm.organisms.toy.provider.benchmarks`, the judge ``organism`` in
:data:`cmrm.judges.registry.JUDGES`), and it imports nothing that uses it. Its evaluation
(``cmrm organism eval``) and ``cmrm demo`` live in :mod:`cmrm.demo`.

See ``docs/organism.md`` for the recipe, the grammar and the measured numbers. Numbers measured on
the organism say nothing about real VLMs. Imported lazily (training imports torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...base.lazy import attach

if TYPE_CHECKING:
    from .build import Architecture as Architecture
    from .build import build_model as build_model
    from .build import build_processor as build_processor
    from .catalog import ANCHOR_SUITE as ANCHOR_SUITE
    from .catalog import CATALOG as CATALOG
    from .catalog import EVAL_SUITES as EVAL_SUITES
    from .catalog import SUITES as SUITES
    from .catalog import VALIDATION_SUITES as VALIDATION_SUITES
    from .judge import OrganismJudge as OrganismJudge
    from .loading import ORGANISM_DIR as ORGANISM_DIR
    from .loading import load_organism as load_organism
    from .loading import save_organism as save_organism
    from .suites import load_suite as load_suite
    from .train import QUICK as QUICK
    from .train import TrainConfig as TrainConfig
    from .train import train_organism as train_organism

_EXPORTS = {
    "Architecture": ".build",
    "build_model": ".build",
    "build_processor": ".build",
    "OrganismJudge": ".judge",
    "ORGANISM_DIR": ".loading",
    "load_organism": ".loading",
    "save_organism": ".loading",
    "ANCHOR_SUITE": ".catalog",
    "CATALOG": ".catalog",
    "EVAL_SUITES": ".catalog",
    "SUITES": ".catalog",
    "VALIDATION_SUITES": ".catalog",
    "load_suite": ".suites",
    "QUICK": ".train",
    "TrainConfig": ".train",
    "train_organism": ".train",
}

__all__ = [
    "ANCHOR_SUITE",
    "CATALOG",
    "EVAL_SUITES",
    "ORGANISM_DIR",
    "QUICK",
    "SUITES",
    "VALIDATION_SUITES",
    "Architecture",
    "OrganismJudge",
    "TrainConfig",
    "build_model",
    "build_processor",
    "load_organism",
    "load_suite",
    "save_organism",
    "train_organism",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = attach(__name__, _EXPORTS, globals())
