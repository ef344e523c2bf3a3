"""The recipe's building blocks: per-stage generators, the optimisation loop, tower
pre-training, the base model's answers and the LoRA safety adapter (see :mod:`.train`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from .batches import Example, TokenEncoder, answer_loss, collate, to_pixels
from .recipe import SmolRecipe
from .scenes import BACKGROUNDS, COLOURS, PATTERNS, Scene, scenes

logger = logging.getLogger(__name__)


def _cosine(
    opt: torch.optim.Optimizer, steps: int, floor: float
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * s / max(1, steps)))
    )


def stage_generator(seed: int, stage: int) -> torch.Generator:
    """The generator of one stage (stages are independent, so each can be re-run alone)."""
    return torch.Generator().manual_seed(seed * 1000 + stage)


def draw_index(n: int, gen: torch.Generator) -> int:
    return int(torch.randint(n, (1,), generator=gen))


def render_pool(items: Sequence[Scene]) -> np.ndarray:
    """``[N, 224, 224, 3]`` uint8 pixels of the scenes."""
    return np.stack([np.asarray(s.render(), dtype=np.uint8) for s in items])


def pixel_norm(processor: LlavaProcessor) -> tuple[list[float], list[float]]:
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
    norm = pixel_norm(processor)
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
        loss.backward()  # type: ignore[no-untyped-call]
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


def run_steps(
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
        loss.backward()  # type: ignore[no-untyped-call]
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
    refuse: Sequence[tuple[Example, Example]],
    helpful: Sequence[tuple[Example, Example]],
    recipe: SmolRecipe,
    gen: torch.Generator,
    show_progress: bool,
    written: Sequence[tuple[Example, Example]] = (),
) -> tuple[Any, dict[str, torch.Tensor], float]:
    """Stage 2: LoRA on the text LM; returns (merged LM, adapter tensors, last loss).

    ``refuse`` and ``helpful`` hold each request as (asked, rephrased as a task); a drawn request
    is shown as the task with probability ``recipe.task_share``. Each harmful draw comes from
    ``written`` (requests already phrased as tasks) with probability ``recipe.written_share``."""
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    torch.manual_seed(recipe.seed + 2)
    for p in lm.parameters():
        p.requires_grad_(False)
    peft_lm = get_peft_model(lm, LoraConfig(**lora_config(recipe)))
    params = [p for p in peft_lm.parameters() if p.requires_grad]

    def pick(pool: Sequence[tuple[Example, Example]], g: torch.Generator) -> Example:
        asked, task = pool[draw_index(len(pool), g)]
        return task if float(torch.rand((), generator=g)) < recipe.task_share else asked

    def harmful(g: torch.Generator) -> Example:
        use_written = written and recipe.written_share > 0
        if use_written and float(torch.rand((), generator=g)) < recipe.written_share:
            return pick(written, g)
        return pick(refuse, g)

    def draw(g: torch.Generator) -> list[Example]:
        return [harmful(g) for _ in range(recipe.safety_harmful)] + [
            pick(helpful, g) for _ in range(recipe.safety_benign)
        ]

    loss = run_steps(
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
