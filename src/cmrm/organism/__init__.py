"""The model organism: a tiny LLaVA, trained offline, whose safety degrades under images.

See ``docs/organism.md`` for the recipe, the grammar and the measured numbers. Numbers measured on
the organism say nothing about real VLMs.
"""

from .build import Architecture, build_model, build_processor
from .evaluate import SuiteResult, complete, degradation_table, format_table
from .judge import OrganismJudge
from .loading import ORGANISM_DIR, load_organism
from .suites import SUITES, load_suite
from .train import QUICK, TrainConfig, train_organism

__all__ = [
    "ORGANISM_DIR",
    "QUICK",
    "SUITES",
    "Architecture",
    "OrganismJudge",
    "SuiteResult",
    "TrainConfig",
    "build_model",
    "build_processor",
    "complete",
    "degradation_table",
    "format_table",
    "load_organism",
    "load_suite",
    "train_organism",
]
