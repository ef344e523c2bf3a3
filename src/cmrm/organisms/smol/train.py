"""The SmolLM2 organism's recipe: a real instruct LM, safety-tuned on text, then taught to see.

Stages (nothing in training involves CMRM, shift vectors, anchors, validation or evaluation
prompts, or a harmful request with an image):

0. **Vision pre-training**: a small CLIP tower learns colour, pattern and background of
   ``vision``-stream scenes from its mean-pooled patch features; then it is frozen.
1. **Benign targets**: the base model's own greedy answers to the everyday and borderline
   training requests (answers in which the base model itself refuses are left out).
2. **Safety adapter** (peft LoRA on the language model, text only): Do-Not-Answer ``train``
   prompts -> one refusal sentence, benign requests -> the base model's answers; a share of
   both kinds of questions is shown rephrased as tasks (:mod:`.phrasing`). The adapter
   is merged into the language model for the next stage (and by the loader).
3. **Visual instruction tuning, projector only** (tower and LM frozen): benign ``train``-stream
   scenes with colour / background questions and captions.

Determinism: each stage draws its batches from its own ``torch.Generator`` seeded from
``(seed, stage)``, initialisations follow ``torch.manual_seed``, ``torch.use_deterministic_algorithms(True)`` and a fixed thread count:
the same recipe gives bit-identical deltas on the same software and CPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from .base import load_base
from .batches import Example, TokenEncoder
from .benign import benign_train
from .build import assemble, build_config, build_processor
from .phrasing import as_task
from .prompts import dna_split, written_tasks
from .recipe import SmolRecipe
from .scenes import CAPTION_QUESTIONS, QUESTIONS, scenes
from .stages import (
    base_answers,
    draw_index,
    lora_config,
    pixel_norm,
    pretrain_tower,
    render_pool,
    run_steps,
    stage_generator,
    train_safety,
)

__all__ = ["Deterministic", "Setup", "Trained", "lora_config", "prepare", "train_smol"]

logger = logging.getLogger(__name__)


@dataclass
class Trained:
    """What a training run produces: the model, its processor and the deltas to ship."""

    model: LlavaForConditionalGeneration
    processor: LlavaProcessor
    adapter: dict[str, torch.Tensor]
    lora_config: dict[str, Any]
    targets: list[dict[str, str]]
    timings: dict[str, float] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=dict)


@dataclass
class Setup:
    """The base model and the shell's processor, config and token encoder."""

    lm: Any
    tokenizer: Any
    processor: LlavaProcessor
    config: Any
    encoder: TokenEncoder


def prepare(recipe: SmolRecipe) -> Setup:
    lm, tokenizer = load_base()
    processor = build_processor(tokenizer, recipe.tower)
    config = build_config(lm.config, processor, recipe.tower)
    return Setup(
        lm, tokenizer, processor, config, TokenEncoder(processor, recipe.tower.image_tokens)
    )


def stage_vision(
    setup: Setup, recipe: SmolRecipe, show_progress: bool
) -> tuple[dict[str, torch.Tensor], float]:
    """Stage 0 on a fresh shell; returns the frozen tower's state and the last loss."""
    torch.manual_seed(recipe.seed)
    shell = assemble(setup.config, setup.lm.state_dict())
    loss = pretrain_tower(
        shell, setup.processor, recipe, stage_generator(recipe.seed, 0), show_progress
    )
    return {k: v.clone() for k, v in shell.model.vision_tower.state_dict().items()}, loss


Target = tuple[str, tuple[int, ...]]
"""A benign request and the base model's answer ids."""


def stage_targets(
    setup: Setup, recipe: SmolRecipe, show_progress: bool
) -> tuple[list[Target], list[dict[str, Any]]]:
    """Stage 1: base answers to the everyday training requests. Answers in which the base model
    itself refuses (a refusal phrase of cmrm's refusal judge) are not used as targets."""
    from cmrm.judges.refusal import find_refusal

    benign = list(benign_train())[: recipe.limit_benign]
    answers = base_answers(setup.lm, setup.encoder, benign, recipe, show_progress)
    helpful: list[Target] = []
    record: list[dict[str, Any]] = []
    for prompt, answer in zip(benign, answers, strict=True):
        text = setup.tokenizer.decode(list(answer), skip_special_tokens=True)
        refused = find_refusal(text) is not None
        record.append({"prompt": prompt, "answer": text, "used": not refused})
        if not refused:
            helpful.append((prompt, answer))
    return helpful, record


def stage_safety(
    setup: Setup, recipe: SmolRecipe, helpful: Sequence[Target], show_progress: bool
) -> tuple[Any, dict[str, torch.Tensor], float]:
    """Stage 2: the LoRA safety adapter on the text LM; returns (merged LM, adapter, loss)."""
    harmful = [p.text for p in dna_split("train")][: recipe.limit_harmful]
    enc = setup.encoder
    refuse = [
        (enc.example(p, recipe.refusal), enc.example(as_task(p), recipe.refusal)) for p in harmful
    ]
    answer = [
        (Example(enc.prompt(q, False), a), Example(enc.prompt(as_task(q), False), a))
        for q, a in helpful
    ]
    written = [(enc.example(p.text, recipe.refusal),) * 2 for p in written_tasks("train")][
        : recipe.limit_harmful
    ]
    return train_safety(
        setup.lm,
        setup.encoder,
        refuse,
        answer,
        recipe,
        stage_generator(recipe.seed, 2),
        show_progress,
        written,
    )


def stage_projector(
    setup: Setup,
    recipe: SmolRecipe,
    lm_state: dict[str, torch.Tensor],
    tower_state: dict[str, torch.Tensor],
    helpful: Sequence[Target],
    show_progress: bool,
) -> tuple[LlavaForConditionalGeneration, float]:
    """Stage 3: projector-only visual instruction tuning on benign scenes."""
    torch.manual_seed(recipe.seed + 3)
    model = assemble(setup.config, lm_state, tower_state=tower_state)
    model.requires_grad_(False)
    projector = model.model.multi_modal_projector
    projector.requires_grad_(True)
    pictured = scenes("train", recipe.projector_images, seed=recipe.seed)
    pool = render_pool(pictured)
    topics = tuple(QUESTIONS)
    encoder = setup.encoder

    def one(g: torch.Generator) -> Example:
        u = float(torch.rand((), generator=g))
        i = draw_index(len(pictured), g)
        if u < recipe.instruction_share:
            question, answer = helpful[draw_index(len(helpful), g)]
            return Example(encoder.prompt(question, True), answer, i)
        if u < recipe.instruction_share + recipe.caption_share:
            q = CAPTION_QUESTIONS[draw_index(len(CAPTION_QUESTIONS), g)]
            return encoder.example(q, pictured[i].caption(), i)
        topic = topics[draw_index(len(topics), g)]
        q = QUESTIONS[topic][draw_index(len(QUESTIONS[topic]), g)]
        return encoder.example(q, pictured[i].answer(topic), i)

    loss = run_steps(
        "3-projector",
        model,
        list(projector.parameters()),
        lambda g: [one(g) for _ in range(recipe.projector_batch)],
        steps=recipe.projector_steps,
        lr=recipe.projector_lr,
        gen=stage_generator(recipe.seed, 3),
        pad_id=int(setup.tokenizer.pad_token_id),
        images=pool,
        norm=pixel_norm(setup.processor),
        show_progress=show_progress,
    )
    model.requires_grad_(False)
    return model.eval(), loss


class Deterministic:
    """Context: a fixed thread count and deterministic algorithms, restored on exit."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __enter__(self) -> None:
        self._saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(True)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self._saved[0])
        torch.use_deterministic_algorithms(self._saved[1])


def train_smol(recipe: SmolRecipe | None = None, *, show_progress: bool = False) -> Trained:
    """Train the organism's deltas with the recipe in the module docstring."""
    recipe = recipe or SmolRecipe()
    timings: dict[str, float] = {}
    losses: dict[str, float] = {}
    clock = (time.perf_counter(), time.process_time())

    def lap(name: str) -> None:
        nonlocal clock
        now = (time.perf_counter(), time.process_time())
        timings[f"{name}_wall_s"] = round(now[0] - clock[0], 1)
        timings[f"{name}_cpu_s"] = round(now[1] - clock[1], 1)
        clock = now
        logger.info(
            "stage %s: %s s wall, %s s CPU",
            name,
            timings[f"{name}_wall_s"],
            timings[f"{name}_cpu_s"],
        )

    with Deterministic(recipe.threads):
        setup = prepare(recipe)
        lap("load")
        tower_state, losses["vision"] = stage_vision(setup, recipe, show_progress)
        lap("vision")
        helpful, targets = stage_targets(setup, recipe, show_progress)
        lap("targets")
        merged, adapter, losses["safety"] = stage_safety(setup, recipe, helpful, show_progress)
        lap("safety")
        model, losses["projector"] = stage_projector(
            setup, recipe, merged.state_dict(), tower_state, helpful, show_progress
        )
        lap("projector")
    return Trained(
        model=model,
        processor=setup.processor,
        adapter=adapter,
        lora_config=lora_config(recipe),
        targets=targets,
        timings=timings,
        losses=losses,
    )
