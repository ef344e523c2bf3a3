"""The LLaVA shell around SmolLM2: config, processor (tokenizer + chat template), model assembly.

The model is a real ``LlavaForConditionalGeneration``: a small CLIP vision tower (224 px, patch
32, so 49 image tokens), LLaVA's two-layer projector, and SmolLM2-135M-Instruct as its language
model. ``<image>`` is added to SmolLM2's tokenizer (one new embedding row, set to the mean of the
others, so it is never a likely next token); the chat template is SmolLM2's ChatML with its
default system prompt and an image slot right before the user's text, so the text-only and
image prompts differ only by the image placeholder::

    <|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n
    <|im_start|>user\\n<image>What colour is the shape?<|im_end|>\\n<|im_start|>assistant\\n

Left padding; the pad token is ``<|im_end|>``, which also ends generation (EOS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    GenerationConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from .scenes import IMAGE_SIZE

IMAGE_TOKEN = "<image>"
SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\n" + SYSTEM_PROMPT + "<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<image>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class Tower:
    """Sizes of the CLIP vision tower (the defaults are the shipped organism's)."""

    hidden: int = 128
    layers: int = 3
    heads: int = 4
    intermediate: int = 512
    patch_size: int = 32

    @property
    def image_tokens(self) -> int:
        return (IMAGE_SIZE // self.patch_size) ** 2

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def build_processor(
    tokenizer: Any, tower: Tower | None = None, *, chat_template: str = CHAT_TEMPLATE
) -> LlavaProcessor:
    """A ``LlavaProcessor`` around SmolLM2's tokenizer, with ``<image>`` added (left padding)."""
    tower = tower or Tower()
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens(
            {"additional_special_tokens": [IMAGE_TOKEN]}, replace_extra_special_tokens=False
        )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = chat_template
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=tower.patch_size,
        vision_feature_select_strategy="default",
        chat_template=chat_template,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
    )


def build_config(text: LlamaConfig, processor: LlavaProcessor, tower: Tower) -> LlavaConfig:
    """The ``LlavaConfig`` (``model_type == "llava"``) for SmolLM2's config and this tower."""
    tokenizer = processor.tokenizer
    text_dict = text.to_dict()
    for key in ("quantization_config", "_name_or_path", "architectures", "transformers_version"):
        text_dict.pop(key, None)
    text_dict["vocab_size"] = len(tokenizer)
    text_dict["pad_token_id"] = tokenizer.pad_token_id
    text_config = LlamaConfig(**text_dict)
    vision = CLIPVisionConfig(
        hidden_size=tower.hidden,
        intermediate_size=tower.intermediate,
        num_hidden_layers=tower.layers,
        num_attention_heads=tower.heads,
        image_size=IMAGE_SIZE,
        patch_size=tower.patch_size,
        projection_dim=tower.hidden,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),  # type: ignore[call-arg]
        image_seq_length=tower.image_tokens,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=bool(text.tie_word_embeddings),
    )


def generation_config(config: LlavaConfig) -> GenerationConfig:
    """Greedy decoding that stops at ``<|im_end|>``."""
    text = config.get_text_config()
    return GenerationConfig(
        max_new_tokens=64,
        do_sample=False,
        eos_token_id=text.eos_token_id,
        pad_token_id=text.pad_token_id,
        bos_token_id=text.bos_token_id,
    )


def assemble(
    config: LlavaConfig,
    lm_state: Mapping[str, torch.Tensor],
    *,
    tower_state: Mapping[str, torch.Tensor] | None = None,
    projector_state: Mapping[str, torch.Tensor] | None = None,
) -> LlavaForConditionalGeneration:
    """A LLaVA model whose language model holds ``lm_state`` (``LlamaForCausalLM`` keys).

    Embedding rows the base vocabulary lacks (``<image>``) are set to the mean of the base rows.
    Tower and projector come from their states when given; otherwise they keep the fresh
    initialisation (seed torch first for reproducible weights).
    """
    model = LlavaForConditionalGeneration(config)
    model.generation_config = generation_config(config)
    lm = model.model.language_model
    inner = {k.removeprefix("model."): v for k, v in lm_state.items() if k.startswith("model.")}
    embed = inner.pop("embed_tokens.weight")
    with torch.no_grad():
        table = lm.embed_tokens.weight
        table[: embed.shape[0]] = embed
        table[embed.shape[0] :] = embed.mean(0, keepdim=True)
    missing, unexpected = lm.load_state_dict(inner, strict=False)
    missing = [k for k in missing if k != "embed_tokens.weight"]
    if missing or unexpected:
        raise RuntimeError(f"language model state mismatch: missing {missing}, extra {unexpected}")
    if "lm_head.weight" in lm_state and not config.get_text_config().tie_word_embeddings:
        with torch.no_grad():
            model.lm_head.weight.copy_(lm_state["lm_head.weight"])
    if tower_state is not None:
        model.model.vision_tower.load_state_dict(dict(tower_state))
    if projector_state is not None:
        model.model.multi_modal_projector.load_state_dict(dict(projector_state))
    model.eval()
    return model


def chat_prompt(processor: LlavaProcessor, text: str, *, image: bool) -> str:
    """The organism's prompt for ``text``, with or without the image placeholder."""
    content: list[dict[str, str]] = [{"type": "text", "text": text}]
    if image:
        content.insert(0, {"type": "image"})
    messages: Any = [{"role": "user", "content": content}]
    return str(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
