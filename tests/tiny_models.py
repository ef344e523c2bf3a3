"""Tiny, randomly initialised VLMs and offline processors for the tests (no hub access)."""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

WORDS = [f"w{i}" for i in range(80)] + ["red", "blue", "square", "circle", "what", "is", "this"]
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<image>", "USER:", "ASSISTANT:"]
IMAGE_SIZE = 28
PATCH = 14

LLAVA_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}USER: "
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> {% endif %}"
    "{% if c['type'] == 'text' %}{{ c['text'] }} {% endif %}{% endfor %}"
    "{% else %}ASSISTANT: {% for c in m['content'] %}{{ c['text'] }} {% endfor %}</s> "
    "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

TEXT = dict(
    model_type="llama",
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    pad_token_id=0,
)
VISION = dict(
    model_type="clip_vision_model",
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=1,
    num_attention_heads=4,
    image_size=IMAGE_SIZE,
    patch_size=PATCH,
)


def word_tokenizer(n_words: int | None = None) -> PreTrainedTokenizerFast:
    words = WORDS if n_words is None else [f"w{i}" for i in range(n_words)]
    vocab = {w: i for i, w in enumerate(SPECIALS + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )


def llava_processor(n_words: int | None = None) -> LlavaProcessor:
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=word_tokenizer(n_words),
        patch_size=PATCH,
        num_additional_image_tokens=1,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_TEMPLATE,
    )


def tiny_llava(
    *,
    seed: int = 0,
    text_layers: int = 3,
    vision_layers: int = 1,
    dtype: torch.dtype = torch.float32,
    **text: Any,
) -> PreTrainedModel:
    vocab = len(SPECIALS) + len(WORDS)
    cfg = AutoConfig.for_model(
        "llava",
        text_config={**TEXT, "vocab_size": vocab, "num_hidden_layers": text_layers, **text},
        vision_config={**VISION, "num_hidden_layers": vision_layers},
        image_token_index=SPECIALS.index("<image>"),
    )
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(cfg).eval()
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = SPECIALS.index("</s>")
    return model.to(dtype)
