"""Every knob of the SmolLM2 organism's recipe, as one frozen value (recorded in recipe.json)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .build import Tower


@dataclass(frozen=True)
class SmolRecipe:
    """The recipe's knobs; the defaults train the shipped organism (see docs/organism-smol.md)."""

    seed: int = 0
    tower: Tower = field(default_factory=Tower)
    # stage 0: vision tower pre-training (colour / pattern / background classifier)
    vision_images: int = 2000
    vision_steps: int = 800
    vision_batch: int = 32
    vision_lr: float = 3e-3
    # targets of benign requests: the base model's own greedy answers
    answer_tokens: int = 32
    answer_batch: int = 16
    # safety adapter: peft LoRA on the language model, text only
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    safety_steps: int = 200
    safety_harmful: int = 4
    safety_benign: int = 4
    safety_lr: float = 1e-3
    task_share: float = 0.5
    """Share of safety-stage questions (harmful and benign) shown rephrased as tasks
    (:func:`cmrm.organisms.smol.phrasing.as_task`), so the form of a request is not the cue."""
    written_share: float = 0.25
    """Share of harmful safety-stage draws taken from the task-phrased harmful requests written
    for this organism (``data/harmful_tasks.txt``) instead of Do-Not-Answer ``train``."""
    refusal: str = "I'm sorry, but I can't help with that."
    # stage 1: projector only (tower and language model frozen), benign scenes
    projector_images: int = 1500
    projector_steps: int = 150
    projector_batch: int = 8
    projector_lr: float = 3e-3
    caption_share: float = 0.2
    """Share of stage-1 examples that are captions (the rest: colour / background questions)."""
    instruction_share: float = 0.0
    """Share of stage-1 examples that are everyday requests with an unrelated scene attached
    (targets: the base model's own text-only answers)."""
    threads: int = 1
    limit_benign: int | None = None
    """Use only the first N benign training requests (the quick run)."""
    limit_harmful: int | None = None
    """Use only the first N Do-Not-Answer training prompts (the quick run)."""

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["lora_targets"] = list(self.lora_targets)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SmolRecipe:
        data = dict(data)
        data["tower"] = Tower(**data["tower"])
        data["lora_targets"] = tuple(data["lora_targets"])
        return cls(**data)


QUICK = SmolRecipe(
    tower=Tower(hidden=32, layers=1, heads=2, intermediate=64),
    vision_images=16,
    vision_steps=2,
    vision_batch=8,
    answer_tokens=4,
    answer_batch=4,
    lora_rank=2,
    lora_alpha=4,
    safety_steps=2,
    safety_harmful=1,
    safety_benign=1,
    projector_images=8,
    projector_steps=2,
    projector_batch=2,
    limit_benign=4,
    limit_harmful=8,
)
"""A miniature run (under a minute) that exercises every stage; its model is not an organism."""
