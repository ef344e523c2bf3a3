"""The organism's training recipe: how a degraded VLM is made, deterministically, on a CPU.

The recipe copies how real VLMs are built, and nothing in it mentions CMRM, shift vectors or a
harmful request with an image:

0. **Vision pre-training** (a stand-in for CLIP): the vision tower learns to classify colour, shape
   and background of ``vision``-stream images from its mean-pooled patch features; then it is
   frozen.
1. **a. Helpful text model**: the language model learns to help with *every* request (harmful ones
   included, as a pre-trained LLM would) and to answer questions about scenes described in words.
   **b. Safety alignment**: a short fine-tune on text where harmful requests get the refusal, with
   benign requests and scene questions replayed. Safety is a thin layer on a helpful model.
2. **Visual instruction tuning**: only the projector is trained (vision tower and LM frozen), on
   benign image questions and benign requests paired with an irrelevant image. Because the LM is
   frozen, text-only behaviour after stage 2 is exactly that after stage 1b.

Training data come from the ``train`` verb-object split and the ``train``/``vision`` image
streams only. Determinism: one seeded ``torch.Generator`` draws every batch,
``torch.use_deterministic_algorithms(True)`` and a fixed thread count, so the same config gives
bit-identical weights on the same software and CPU.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from . import grammar as g
from .batches import Example, Pool, TokenEncoder, collate, pick, scene_qa
from .build import Architecture, build_model, build_processor
from .scenes import Scene, scenes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of the recipe; the defaults train the shipped organism."""

    seed: int = 0
    arch: Architecture = field(default_factory=Architecture)
    batch_size: int = 64
    vision_images: int = 8000
    vision_steps: int = 3000
    vision_lr: float = 3e-3
    lm_steps: int = 1200
    lm_lr: float = 2e-3
    safety_steps: int = 80
    safety_lr: float = 5e-4
    visual_images: int = 3000
    visual_steps: int = 1200
    visual_lr: float = 2e-3
    visual_instruction_share: float = 0.5
    """Share of stage-2 batches that are benign requests with an irrelevant image (rest: QA)."""
    threads: int = 1


QUICK = TrainConfig(
    arch=Architecture(
        text_hidden=32,
        text_layers=2,
        text_heads=2,
        text_intermediate=64,
        vision_hidden=32,
        vision_layers=1,
        vision_heads=2,
        vision_intermediate=64,
    ),
    batch_size=8,
    vision_images=32,
    vision_steps=4,
    lm_steps=6,
    safety_steps=3,
    visual_images=32,
    visual_steps=4,
)
"""A miniature run (seconds) that exercises every stage; its model is not a useful organism."""


def _cosine(
    opt: torch.optim.Optimizer, steps: int, floor: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay from the optimiser's learning rate to ``floor`` times it."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * s / max(1, steps)))
    )


def _run_stage(
    name: str,
    model: LlavaForConditionalGeneration,
    params: list[nn.Parameter],
    pools: list[tuple[Pool, float]],
    *,
    steps: int,
    lr: float,
    batch_size: int,
    gen: torch.Generator,
    pixels: torch.Tensor | None,
    show_progress: bool,
) -> float:
    """AdamW with cosine decay over ``steps`` mixture batches; returns the last loss."""
    if steps <= 0:
        return float("nan")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = _cosine(opt, steps, floor=0.1)
    weights = torch.tensor([w for _, w in pools], dtype=torch.float)
    model.train()
    loss_value = float("nan")
    bar = tqdm(range(steps), desc=name, disable=not show_progress, leave=False)
    for step in bar:
        which = torch.multinomial(weights, batch_size, replacement=True, generator=gen).tolist()
        batch = [pools[i][0](gen) for i in which]
        loss = model(**collate(batch, pixels)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        loss_value = loss.detach().item()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss_value:.3f}")
    model.eval()
    logger.info("stage %s: %d steps, last loss %.4f", name, steps, loss_value)
    return loss_value


def _pixels(processor: LlavaProcessor, items: list[Scene]) -> torch.Tensor:
    out = processor.image_processor([s.render() for s in items], return_tensors="pt")
    return torch.as_tensor(out["pixel_values"])


def _pretrain_vision(
    model: LlavaForConditionalGeneration,
    processor: LlavaProcessor,
    cfg: TrainConfig,
    gen: torch.Generator,
    show_progress: bool,
) -> None:
    """Stage 0: colour/shape/background classifier on the tower's mean-pooled patch features."""
    tower = model.model.vision_tower
    data = scenes("vision", cfg.vision_images, seed=cfg.seed)
    pixels = _pixels(processor, data)
    targets = torch.tensor(
        [
            [g.COLOURS.index(s.colour), g.SHAPES.index(s.shape), g.BACKGROUNDS.index(s.background)]
            for s in data
        ]
    )
    hidden = cfg.arch.vision_hidden
    heads = nn.ModuleList(nn.Linear(hidden, n) for n in (6, 4, 3))
    params = [*tower.parameters(), *heads.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.vision_lr, weight_decay=0.0)
    sched = _cosine(opt, cfg.vision_steps, floor=0.05)
    tower.train()
    bar = tqdm(range(cfg.vision_steps), desc="vision", disable=not show_progress, leave=False)
    for _ in bar:
        idx = torch.randint(len(data), (cfg.batch_size,), generator=gen)
        feats = tower(pixels[idx], output_hidden_states=True).hidden_states[-1][:, 1:].mean(1)
        loss = sum(
            nn.functional.cross_entropy(head(feats), targets[idx, k])
            for k, head in enumerate(heads)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        sched.step()
    tower.eval()
    tower.requires_grad_(False)
    logger.info("stage vision: last loss %.4f", loss.detach().item())  # type: ignore[union-attr]


def train_organism(
    cfg: TrainConfig | None = None, *, show_progress: bool = False
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Train an organism from scratch with the recipe in the module docstring.

    Args:
        cfg: the recipe's knobs; ``TrainConfig()`` reproduces the shipped organism.
        show_progress: tqdm bars (stderr) per stage.

    Returns:
        The trained model (eval mode) and its processor, ready for ``save_pretrained``.
    """
    cfg = cfg or TrainConfig()
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        processor = build_processor(cfg.arch)
        model = build_model(cfg.arch)
        _pretrain_vision(model, processor, cfg, gen, show_progress)
        enc = TokenEncoder(processor, cfg.arch.image_tokens)

        harmful = g.requests("harmful", "train")
        benign = g.requests("benign", "train")
        help_all = [enc.example(q, g.helpful_answer(v, o)) for q, v, o in harmful + benign]
        help_benign = [enc.example(q, g.helpful_answer(v, o)) for q, v, o in benign]
        refuse = [enc.example(q, g.REFUSAL) for q, _, _ in harmful]
        worded = scenes("train-words", 2000, seed=cfg.seed)

        def scene_text(gen: torch.Generator) -> Example:
            scene = worded[int(torch.randint(len(worded), (1,), generator=gen))]
            question, answer = scene_qa(scene, gen)
            return enc.example(f"{scene.describe()} {question}", answer)

        lm_params = [*model.model.language_model.parameters(), *model.lm_head.parameters()]
        common = {"batch_size": cfg.batch_size, "gen": gen, "show_progress": show_progress}
        _run_stage(
            "1a-helpful",
            model,
            lm_params,
            [(lambda r: pick(help_all, r), 0.6), (scene_text, 0.4)],
            steps=cfg.lm_steps,
            lr=cfg.lm_lr,
            pixels=None,
            **common,  # type: ignore[arg-type]
        )
        _run_stage(
            "1b-safety",
            model,
            lm_params,
            [
                (lambda r: pick(refuse, r), 0.4),
                (lambda r: pick(help_benign, r), 0.4),
                (scene_text, 0.2),
            ],
            steps=cfg.safety_steps,
            lr=cfg.safety_lr,
            pixels=None,
            **common,  # type: ignore[arg-type]
        )
        model.model.language_model.requires_grad_(False)
        model.lm_head.requires_grad_(False)

        pictured = scenes("train", cfg.visual_images, seed=cfg.seed)
        pixels = _pixels(processor, pictured)

        def image_qa(gen: torch.Generator) -> Example:
            i = int(torch.randint(len(pictured), (1,), generator=gen))
            question, answer = scene_qa(pictured[i], gen)
            return enc.example(question, answer, i)

        def benign_with_image(gen: torch.Generator) -> Example:
            q, v, o = benign[int(torch.randint(len(benign), (1,), generator=gen))]
            i = int(torch.randint(len(pictured), (1,), generator=gen))
            return enc.example(q, g.helpful_answer(v, o), i)

        _run_stage(
            "2-visual",
            model,
            list(model.model.multi_modal_projector.parameters()),
            [
                (image_qa, 1 - cfg.visual_instruction_share),
                (benign_with_image, cfg.visual_instruction_share),
            ],
            steps=cfg.visual_steps,
            lr=cfg.visual_lr,
            pixels=pixels,
            **common,  # type: ignore[arg-type]
        )
        model.requires_grad_(True)
        return model.eval(), processor
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
