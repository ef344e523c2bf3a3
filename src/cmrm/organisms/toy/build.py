"""The organism's architecture, tokenizer and processor, built offline from code.

The organism is a real ``LlavaForConditionalGeneration`` (CLIP vision tower, two-layer projector,
Llama decoder), with a word-level tokenizer over :func:`cmrm.organisms.toy.grammar.vocabulary` and a
``LlavaProcessor`` whose chat template renders

- ``<s> <user> <image> {text} <assistant>`` for a message with an image, and
- ``<s> <user> {text} <assistant>`` without it,

so the two prompts differ only by the image placeholder, as CMRM's prompt variants require.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    GenerationConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from .grammar import vocabulary
from .scenes import IMAGE_SIZE

CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{ ' <user>' }}"
    "{%- elif message['role'] == 'assistant' -%}{{ ' <assistant>' }}{%- endif -%}"
    "{%- if message['content'] is string -%}{{ ' ' + message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ ' <image>' }}"
    "{%- elif part['type'] == 'text' -%}{{ ' ' + part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{{ ' ' + eos_token }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ ' <assistant>' }}{%- endif -%}"
)


@dataclass(frozen=True)
class Architecture:
    """Sizes of the organism (the defaults are the shipped organism's)."""

    text_hidden: int = 128
    text_layers: int = 4
    text_heads: int = 4
    text_intermediate: int = 256
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    vision_intermediate: int = 128
    patch_size: int = 8

    @property
    def image_tokens(self) -> int:
        return (IMAGE_SIZE // self.patch_size) ** 2


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The word-level tokenizer: one token per whitespace-separated word, left padding."""
    vocab = {word: i for i, word in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<user>", "<assistant>"]})
    return tokenizer


def build_processor(arch: Architecture | None = None) -> LlavaProcessor:
    """The offline ``LlavaProcessor``: PIL CLIP image processor (no torchvision) + tokenizer."""
    arch = arch or Architecture()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=build_tokenizer(),
        patch_size=arch.patch_size,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,
    )


def build_config(arch: Architecture | None = None) -> LlavaConfig:
    """The ``LlavaConfig`` (``model_type == "llava"``) matching :func:`build_processor`."""
    arch = arch or Architecture()
    tokenizer = build_tokenizer()
    vocab_size = -(-len(tokenizer) // 8) * 8
    text = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=arch.text_hidden,
        intermediate_size=arch.text_intermediate,
        num_hidden_layers=arch.text_layers,
        num_attention_heads=arch.text_heads,
        num_key_value_heads=arch.text_heads,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    vision = CLIPVisionConfig(
        hidden_size=arch.vision_hidden,
        intermediate_size=arch.vision_intermediate,
        num_hidden_layers=arch.vision_layers,
        num_attention_heads=arch.vision_heads,
        image_size=IMAGE_SIZE,
        patch_size=arch.patch_size,
        projection_dim=arch.vision_hidden,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),  # type: ignore[call-arg]
        image_seq_length=arch.image_tokens,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )


def generation_config(config: LlavaConfig) -> GenerationConfig:
    """Greedy decoding that stops at ``</s>``; answers are short."""
    text = config.get_text_config()
    return GenerationConfig(
        max_new_tokens=20,
        do_sample=False,
        eos_token_id=text.eos_token_id,
        pad_token_id=text.pad_token_id,
        bos_token_id=text.bos_token_id,
    )


def build_model(arch: Architecture | None = None) -> LlavaForConditionalGeneration:
    """A freshly initialised organism (seed torch before calling for reproducible weights)."""
    config = build_config(arch)
    model = LlavaForConditionalGeneration(config)
    model.generation_config = generation_config(config)
    return model


def chat_prompt(processor: LlavaProcessor, text: str, *, image: bool) -> str:
    """The organism's prompt for ``text``, with or without the image placeholder."""
    content: list[dict[str, str]] = [{"type": "text", "text": text}]
    if image:
        content.insert(0, {"type": "image"})
    messages: Any = [{"role": "user", "content": content}]
    return str(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
