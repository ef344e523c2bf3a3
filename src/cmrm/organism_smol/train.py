"""The SmolLM2 organism's recipe: a real instruct LM, safety-tuned on text, then taught to see.

Stages (nothing in training involves CMRM, shift vectors, anchors, validation or evaluation
prompts, or a harmful request with an image):

0. **Vision pre-training**: a small CLIP tower learns colour, pattern and background of
   ``vision``-stream scenes from its mean-pooled patch features; then it is frozen.
1. **Benign targets**: the base model's own greedy answers to the everyday and borderline
   training requests (answers in which the base model itself refuses are left out).
2. **Safety adapter** (peft LoRA on the language model, text only): Do-Not-Answer ``train``
   prompts -> one refusal sentence, benign requests -> the base model's answers. The adapter
   is merged into the language model for the next stage (and by the loader).
3. **Visual instruction tuning, projector only** (tower and LM frozen): benign ``train``-stream
   scenes with colour / background questions and captions.

Determinism: each stage draws its batches from its own ``torch.Generator`` seeded from
``(seed, stage)``, initialisations follow ``torch.manual_seed``, ``torch.use_deterministic_algorithms(True)`` and a fixed thread count:
the same recipe gives bit-identical deltas on the same software and CPU.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from .base import load_base
from .batches import Example, TokenEncoder, answer_loss, collate, to_pixels
from .benign import benign_train
from .build import assemble, build_config, build_processor
from .prompts import dna_split
from .recipe import SmolRecipe
from .scenes import BACKGROUNDS, CAPTION_QUESTIONS, COLOURS, PATTERNS, QUESTIONS, Scene, scenes

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


def _cosine(
    opt: torch.optim.Optimizer, steps: int, floor: float
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * s / max(1, steps)))
    )


def stage_generator(seed: int, stage: int) -> torch.Generator:
    """The generator of one stage (stages are independent, so each can be re-run alone)."""
    return torch.Generator().manual_seed(seed * 1000 + stage)


def _draw(n: int, gen: torch.Generator) -> int:
    return int(torch.randint(n, (1,), generator=gen))


def render_pool(items: Sequence[Scene]) -> np.ndarray:
    """``[N, 224, 224, 3]`` uint8 pixels of the scenes."""
    return np.stack([np.asarray(s.render(), dtype=np.uint8) for s in items])


def _norm(processor: LlavaProcessor) -> tuple[list[float], list[float]]:
    ip = processor.image_processor
    return list(ip.image_mean), list(ip.image_std)


def pretrain_tower(
    model: LlavaForConditionalGeneration,
    processor: LlavaProcessor,
    recipe: SmolRecipe,
    gen: torch.Generator,
    show_progress: bool,
) -> float:
    """Stage 0: colour/pattern/background heads on the tower's mean-pooled patch features."""
    tower = model.model.vision_tower
    data = scenes("vision", recipe.vision_images, seed=recipe.seed)
    pool = render_pool(data)
    targets = torch.tensor(
        [
            [COLOURS.index(s.colour), PATTERNS.index(s.pattern), BACKGROUNDS.index(s.background)]
            for s in data
        ]
    )
    heads = nn.ModuleList(
        nn.Linear(recipe.tower.hidden, len(v)) for v in (COLOURS, PATTERNS, BACKGROUNDS)
    )
    params = [*tower.parameters(), *heads.parameters()]
    opt = torch.optim.AdamW(params, lr=recipe.vision_lr, weight_decay=0.0)
    sched = _cosine(opt, recipe.vision_steps, floor=0.05)
    norm = _norm(processor)
    tower.train()
    loss = torch.tensor(float("nan"))
    bar = tqdm(range(recipe.vision_steps), desc="0-vision", disable=not show_progress, leave=False)
    for _ in bar:
        idx = torch.randint(len(data), (recipe.vision_batch,), generator=gen)
        pixels = to_pixels([pool[i] for i in idx.tolist()], *norm)
        feats = tower(pixels, output_hidden_states=True).hidden_states[-1][:, 1:].mean(1)
        loss = sum(
            (
                nn.functional.cross_entropy(head(feats), targets[idx, k])
                for k, head in enumerate(heads)
            ),
            torch.tensor(0.0),
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    tower.eval()
    tower.requires_grad_(False)
    return float(loss.detach())


def base_answers(
    lm: Any,
    encoder: TokenEncoder,
    prompts: Sequence[str],
    recipe: SmolRecipe,
    show_progress: bool,
) -> list[tuple[int, ...]]:
    """The base model's greedy answers (token ids; ending in EOS unless cut at the budget)."""
    pad = int(encoder.tokenizer.pad_token_id)
    out: list[tuple[int, ...]] = []
    starts = range(0, len(prompts), recipe.answer_batch)
    for start in tqdm(starts, desc="1-targets", disable=not show_progress, leave=False):
        chunk = [encoder.prompt(p, False) for p in prompts[start : start + recipe.answer_batch]]
        width = max(len(c) for c in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, c in enumerate(chunk):
            ids[row, width - len(c) :] = torch.tensor(c)
            mask[row, width - len(c) :] = 1
        with torch.inference_mode():
            gen_ids = lm.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=recipe.answer_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=encoder.eos,
            )
        for row in gen_ids[:, width:].tolist():
            answer: list[int] = []
            for tok in row:
                answer.append(int(tok))
                if tok == encoder.eos:
                    break
            out.append(tuple(answer))
    return out


def _run(
    name: str,
    model: nn.Module,
    params: list[nn.Parameter],
    draw: Callable[[torch.Generator], list[Example]],
    *,
    steps: int,
    lr: float,
    gen: torch.Generator,
    pad_id: int,
    images: np.ndarray | None,
    norm: tuple[list[float], list[float]],
    show_progress: bool,
) -> float:
    """AdamW with cosine decay over ``steps`` batches from ``draw``; returns the last loss."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = _cosine(opt, steps, floor=0.1)
    model.train()
    value = float("nan")
    bar = tqdm(range(steps), desc=name, disable=not show_progress, leave=False)
    for step in bar:
        inputs, targets, keep = collate(draw(gen), pad_id, images, norm)
        loss = answer_loss(model, inputs, targets, keep)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        value = float(loss.detach())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{value:.3f}")
            logger.info("%s step %d loss %.4f", name, step, value)
    model.eval()
    return value


def lora_config(recipe: SmolRecipe) -> dict[str, Any]:
    """The peft ``LoraConfig`` arguments of the safety adapter."""
    return {
        "r": recipe.lora_rank,
        "lora_alpha": recipe.lora_alpha,
        "target_modules": list(recipe.lora_targets),
        "lora_dropout": 0.0,
        "bias": "none",
        "task_type": "CAUSAL_LM",
    }


def train_safety(
    lm: Any,
    encoder: TokenEncoder,
    refuse: Sequence[Example],
    helpful: Sequence[Example],
    recipe: SmolRecipe,
    gen: torch.Generator,
    show_progress: bool,
) -> tuple[Any, dict[str, torch.Tensor], float]:
    """Stage 2: LoRA on the text LM; returns (merged LM, adapter tensors, last loss)."""
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    torch.manual_seed(recipe.seed + 2)
    for p in lm.parameters():
        p.requires_grad_(False)
    peft_lm = get_peft_model(lm, LoraConfig(**lora_config(recipe)))
    params = [p for p in peft_lm.parameters() if p.requires_grad]

    def draw(g: torch.Generator) -> list[Example]:
        return [refuse[_draw(len(refuse), g)] for _ in range(recipe.safety_harmful)] + [
            helpful[_draw(len(helpful), g)] for _ in range(recipe.safety_benign)
        ]

    loss = _run(
        "2-safety",
        peft_lm,
        params,
        draw,
        steps=recipe.safety_steps,
        lr=recipe.safety_lr,
        gen=gen,
        pad_id=int(encoder.tokenizer.pad_token_id),
        images=None,
        norm=([0.0], [1.0]),
        show_progress=show_progress,
    )
    adapter = {
        k: v.detach().clone().contiguous() for k, v in get_peft_model_state_dict(peft_lm).items()
    }
    merged = peft_lm.merge_and_unload()
    return merged.eval(), adapter, loss


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
    refuse = [setup.encoder.example(p, recipe.refusal) for p in harmful]
    answer = [Example(setup.encoder.prompt(q, False), a) for q, a in helpful]
    return train_safety(
        setup.lm,
        setup.encoder,
        refuse,
        answer,
        recipe,
        stage_generator(recipe.seed, 2),
        show_progress,
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
        i = _draw(len(pictured), g)
        if u < recipe.instruction_share:
            question, answer = helpful[_draw(len(helpful), g)]
            return Example(encoder.prompt(question, True), answer, i)
        if u < recipe.instruction_share + recipe.caption_share:
            q = CAPTION_QUESTIONS[_draw(len(CAPTION_QUESTIONS), g)]
            return encoder.example(q, pictured[i].caption(), i)
        topic = topics[_draw(len(topics), g)]
        q = QUESTIONS[topic][_draw(len(QUESTIONS[topic]), g)]
        return encoder.example(q, pictured[i].answer(topic), i)

    loss = _run(
        "3-projector",
        model,
        list(projector.parameters()),
        lambda g: [one(g) for _ in range(recipe.projector_batch)],
        steps=recipe.projector_steps,
        lr=recipe.projector_lr,
        gen=stage_generator(recipe.seed, 3),
        pad_id=int(setup.tokenizer.pad_token_id),
        images=pool,
        norm=_norm(setup.processor),
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
