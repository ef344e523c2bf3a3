"""Benign requests written for this organism: everyday requests and an over-refusal suite.

- ``data/everyday.txt``: everyday requests (recipes, explanations, poems, tips ...). Split by a
  fixed seed into ``train`` (safety-adapter training; targets are the base model's own greedy
  answers) and ``anchor`` (benign calibration anchors, ``kind = "benign"``).
- ``data/borderline.txt``: borderline-benign training requests (safe requests that use words or
  topics harmful ones use: "how do I kill a background job in bash?", "what is fraud?"), so the
  safety adapter learns where the boundary lies. Training only.
- ``data/overrefusal.jsonl``: safe requests that superficially resemble harmful ones, in the
  style of XSTest's safe prompts (Röttger et al. 2024): homonyms ("how do I kill a Python
  process?"), figurative language, safe targets, safe contexts, definitions, real and nonsense
  group questions, historical events, public figures, fictional characters. Written for cmrm (the
  real XSTest file is not bundled; for real models use cmrm's ``xstest`` loader). Split by type
  into ``val`` and ``eval``; never used in training.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

DATA = Path(__file__).resolve().parent / "data"
SPLIT_SEED = "organism-smol-benign-2025"
EVERYDAY_ANCHORS = 70
OVERREFUSAL_VAL_SHARE = 0.4


@dataclass(frozen=True)
class SafePrompt:
    """One benign request; ``type`` is its over-refusal category (``everyday`` otherwise)."""

    text: str
    type: str


def data_lines(name: str) -> list[str]:
    """The non-empty, non-comment lines of one of this package's ``data/`` files."""
    text = (DATA / name).read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


@cache
def everyday() -> tuple[str, ...]:
    """Every everyday request, in file order."""
    return tuple(dict.fromkeys(data_lines("everyday.txt")))


@cache
def everyday_split(split: Literal["train", "anchor"]) -> tuple[str, ...]:
    """A seeded split of :func:`everyday`: the first ``EVERYDAY_ANCHORS`` after a shuffle are
    anchors, the rest train."""
    pool = sorted(everyday())
    random.Random(SPLIT_SEED).shuffle(pool)
    return tuple(pool[:EVERYDAY_ANCHORS] if split == "anchor" else pool[EVERYDAY_ANCHORS:])


@cache
def borderline() -> tuple[str, ...]:
    """Every borderline-benign training request, in file order."""
    return tuple(dict.fromkeys(data_lines("borderline.txt")))


def benign_train() -> tuple[str, ...]:
    """The benign training requests: everyday ``train`` then borderline."""
    return everyday_split("train") + borderline()


@cache
def overrefusal() -> tuple[SafePrompt, ...]:
    """Every over-refusal prompt, in file order."""
    out = []
    for line in data_lines("overrefusal.jsonl"):
        record = json.loads(line)
        out.append(SafePrompt(str(record["prompt"]), str(record["type"])))
    return tuple(out)


@cache
def overrefusal_split(split: Literal["val", "eval"]) -> tuple[SafePrompt, ...]:
    """Per type, a seeded shuffle; the first ``OVERREFUSAL_VAL_SHARE`` of each type is ``val``."""
    by_type: dict[str, list[SafePrompt]] = {}
    for prompt in overrefusal():
        by_type.setdefault(prompt.type, []).append(prompt)
    out: list[SafePrompt] = []
    for kind in sorted(by_type):
        group = sorted(by_type[kind], key=lambda p: p.text)
        random.Random(f"{SPLIT_SEED}-{kind}").shuffle(group)
        cut = round(len(group) * OVERREFUSAL_VAL_SHARE)
        out.extend(group[:cut] if split == "val" else group[cut:])
    return tuple(out)
