"""The SmolLM2 organism: a real instruct LM (SmolLM2-135M-Instruct), safety-tuned on text with a
LoRA adapter, put in a LLaVA shell whose projector learned benign scenes; with an image its
refusals fade. See ``docs/organism-smol.md``. Numbers measured on it do not transfer to large
VLMs, and its keyword judge is a proxy.

Names are imported lazily, so that reading the suites does not import ``transformers``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "QUICK": "recipe",
    "SMOL_DIR": "loading",
    "SUITES": "suites",
    "SmolJudge": "judge",
    "SmolRecipe": "recipe",
    "benchmarks": "provider",
    "load_smol_organism": "loading",
    "load_suite": "suites",
    "save_smol": "loading",
    "train_smol": "train",
}
__all__ = [
    "QUICK",
    "SMOL_DIR",
    "SUITES",
    "SmolJudge",
    "SmolRecipe",
    "benchmarks",
    "load_smol_organism",
    "load_suite",
    "save_smol",
    "train_smol",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return __all__
