"""Tiny, randomly initialised models of every supported VLM family, with offline processors.

Each builder returns ``(model, processor)``: a model built from a config (hidden 32, 2-3 text layers,
1 vision layer unless asked otherwise) and the family's *real* processor class, assembled offline
from a word-level tokenizer that knows the family's special tokens, the family's PIL image processor
at tiny sizes, and a short chat template in the family's style. Processor and config agree on the
number of image tokens per image.

Processors that also take a video processor (Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision, SmolVLM,
InternVL) are built through :func:`image_only`: the video processors need torchvision, which the
test environment does not have, and images are all cmrm uses.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    Gemma3Processor,
    Idefics3Processor,
    InternVLProcessor,
    LlavaNextProcessor,
    LlavaOnevisionProcessor,
    PaliGemmaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2_5_VLProcessor,
    Qwen2VLProcessor,
    SmolVLMProcessor,
)
from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
from transformers.models.llava_next.image_processing_pil_llava_next import (
    LlavaNextImageProcessorPil,
)
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
    LlavaOnevisionImageProcessorPil,
)
from transformers.models.pixtral import image_processing_pil_pixtral
from transformers.models.pixtral.image_processing_pil_pixtral import PixtralImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil
from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

from .tiny_models import llava_processor, tiny_llava

Built = tuple[PreTrainedModel, Any]

WORDS = [f"w{i}" for i in range(60)] + ["red", "blue", "square", "what", "is", "this"]
ROLES = ["user", "assistant", "model", "User:", "Assistant:", "[INST]", "[/INST]"]
BASE_SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
PATCH = 14

_TEXT: dict[str, Any] = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    pad_token_id=0,
    bos_token_id=2,
    eos_token_id=3,
)
_VISION: dict[str, Any] = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4
)


class FamilyTokens:
    """A word-level vocabulary: base specials, the family's specials, role words and words."""

    def __init__(self, specials: list[str]) -> None:
        self.tokens = BASE_SPECIALS + specials + ROLES + WORDS
        self.vocab = {token: i for i, token in enumerate(self.tokens)}

    def __getitem__(self, token: str) -> int:
        return self.vocab[token]

    def __len__(self) -> int:
        return len(self.tokens)

    def tokenizer(self, specials: list[str], **named: str) -> PreTrainedTokenizerFast:
        tok = Tokenizer(models.WordLevel(self.vocab, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        out = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            pad_token="<pad>",
            unk_token="<unk>",
            bos_token="<s>",
            eos_token="</s>",
            extra_special_tokens=named,
        )
        out.add_special_tokens({"additional_special_tokens": specials})
        return out


NO_VIDEOS = SimpleNamespace(num_frames=None, fps=None)
"""Stands in for a video processor: SmolVLM's chat template reads its frame defaults."""


def image_only(cls: type[ProcessorMixin]) -> type[ProcessorMixin]:
    """The processor class without its video processor (video processors need torchvision)."""

    def __init__(self: Any, image_processor: Any, tokenizer: Any, **kwargs: Any) -> None:
        cls.__init__(self, image_processor, tokenizer, None, **kwargs)
        self.video_processor = NO_VIDEOS

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": __name__})


def _build(model_type: str, seed: int, eos: int, **config: Any) -> PreTrainedModel:
    cfg = AutoConfig.for_model(model_type, **config)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(cfg).eval()
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = eos
    return model


def _text(tokens: FamilyTokens, model_type: str, layers: int, **extra: Any) -> dict[str, Any]:
    return {
        **_TEXT,
        "model_type": model_type,
        "vocab_size": len(tokens),
        "num_hidden_layers": layers,
        **extra,
    }


# --- LLaVA-1.5 ---------------------------------------------------------------------------------


def build_llava(text_layers: int = 3, vision_layers: int = 1) -> Built:
    return tiny_llava(text_layers=text_layers, vision_layers=vision_layers), llava_processor()


# --- LLaVA-NeXT ---------------------------------------------------------------------------------

LLAVA_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}[INST] "
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> {% endif %}"
    "{% if c['type'] == 'text' %}{{ c['text'] }} {% endif %}{% endfor %}[/INST]"
    "{% else %} {% for c in m['content'] %}{{ c['text'] }}{% endfor %}</s>"
    "{% endif %}{% endfor %}"
)
PINPOINTS = [[28, 28], [28, 56], [56, 28]]


def build_llava_next(text_layers: int = 3, vision_layers: int = 1) -> Built:
    tokens = FamilyTokens(["<image>"])
    model = _build(
        "llava_next",
        0,
        tokens["</s>"],
        text_config=_text(tokens, "mistral", text_layers),
        vision_config={
            **_VISION,
            "model_type": "clip_vision_model",
            "image_size": 28,
            "patch_size": PATCH,
            "num_hidden_layers": vision_layers,
        },
        image_token_index=tokens["<image>"],
        image_grid_pinpoints=PINPOINTS,
        vision_feature_layer=-1,
    )
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": 28},
        crop_size={"height": 28, "width": 28},
        image_grid_pinpoints=PINPOINTS,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokens.tokenizer(["<image>"], image_token="<image>"),
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_TEMPLATE,
    )
    return model, processor


# --- LLaVA-OneVision ----------------------------------------------------------------------------

QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}{{ IMAGE }}{% endif %}"
    "{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIALS = ["<|im_start|>", "<|im_end|>"]


def _qwen_template(image: str) -> str:
    return QWEN_TEMPLATE.replace("{{ IMAGE }}", image)


def build_llava_onevision(text_layers: int = 3, vision_layers: int = 1) -> Built:
    tokens = FamilyTokens([*QWEN_SPECIALS, "<image>", "<video>"])
    model = _build(
        "llava_onevision",
        0,
        tokens["<|im_end|>"],
        text_config=_text(tokens, "qwen2", text_layers),
        vision_config={
            **_VISION,
            "model_type": "siglip_vision_model",
            "image_size": 28,
            "patch_size": PATCH,
            "num_hidden_layers": vision_layers,
        },
        image_token_index=tokens["<image>"],
        video_token_index=tokens["<video>"],
        image_grid_pinpoints=PINPOINTS,
        vision_feature_layer=-1,
    )
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": 28, "width": 28}, image_grid_pinpoints=PINPOINTS
    )
    processor = image_only(LlavaOnevisionProcessor)(
        image_processor,
        tokens.tokenizer(
            [*QWEN_SPECIALS, "<image>", "<video>"], image_token="<image>", video_token="<video>"
        ),
        num_image_tokens=(28 // PATCH) ** 2,
        vision_feature_select_strategy="full",
        chat_template=_qwen_template("<image>\n"),
    )
    return model, processor


# --- Qwen2-VL / Qwen2.5-VL ----------------------------------------------------------------------

VISION_SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
QWEN_PIXELS = 56 * 56  # every test image becomes 56x56: 4x4 patches, 2x2 merged = 4 tokens


def _qwen_vl(family: str, text_layers: int, vision_layers: int, vision: dict[str, Any]) -> Built:
    tokens = FamilyTokens([*QWEN_SPECIALS, *VISION_SPECIALS])
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]}
    model = _build(
        family,
        0,
        tokens["<|im_end|>"],
        text_config=_text(tokens, f"{family}_text", text_layers, rope_parameters=rope),
        vision_config={
            "depth": vision_layers,
            "num_heads": 4,
            "patch_size": PATCH,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            **vision,
        },
        image_token_id=tokens["<|image_pad|>"],
        video_token_id=tokens["<|video_pad|>"],
        vision_start_token_id=tokens["<|vision_start|>"],
        vision_end_token_id=tokens["<|vision_end|>"],
    )
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": QWEN_PIXELS, "longest_edge": QWEN_PIXELS},
        patch_size=PATCH,
        merge_size=2,
        temporal_patch_size=2,
    )
    cls = Qwen2VLProcessor if family == "qwen2_vl" else Qwen2_5_VLProcessor
    processor = image_only(cls)(
        image_processor,
        tokens.tokenizer([*QWEN_SPECIALS, *VISION_SPECIALS]),
        chat_template=_qwen_template("<|vision_start|><|image_pad|><|vision_end|>"),
    )
    return model, processor


def build_qwen2_vl(text_layers: int = 3, vision_layers: int = 1) -> Built:
    vision = {"embed_dim": 32, "hidden_size": 32, "mlp_ratio": 2}
    return _qwen_vl("qwen2_vl", text_layers, vision_layers, vision)


def build_qwen2_5_vl(text_layers: int = 3, vision_layers: int = 1) -> Built:
    vision = {
        "hidden_size": 32,
        "out_hidden_size": 32,
        "intermediate_size": 64,
        "window_size": 56,
        "fullatt_block_indexes": [0],
    }
    return _qwen_vl("qwen2_5_vl", text_layers, vision_layers, vision)


# --- Idefics3 / SmolVLM -------------------------------------------------------------------------

IDEFICS_SPECIALS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
IDEFICS_TEMPLATE = (
    "<s>{% for m in messages %}{{ m['role'] | capitalize }}:"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% endif %}"
    "{% if c['type'] == 'text' %} {{ c['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)
IDEFICS_SIZE = 56  # 4x4 patches, pixel shuffle by 2: 4 image tokens


def _idefics(family: str, text_layers: int, vision_layers: int) -> Built:
    tokens = FamilyTokens(IDEFICS_SPECIALS)
    model = _build(
        family,
        0,
        tokens["<end_of_utterance>"],
        text_config=_text(tokens, "llama", text_layers),
        vision_config={
            **_VISION,
            "image_size": IDEFICS_SIZE,
            "patch_size": PATCH,
            "num_hidden_layers": vision_layers,
        },
        image_token_id=tokens["<image>"],
        scale_factor=2,
        pad_token_id=0,
    )
    size = {"longest_edge": IDEFICS_SIZE}
    tokenizer = tokens.tokenizer(IDEFICS_SPECIALS)
    seq_len = (IDEFICS_SIZE // PATCH) ** 2 // 4
    if family == "idefics3":
        image_processor: Any = Idefics3ImageProcessorPil(
            size=size, max_image_size=size, do_image_splitting=False
        )
        processor: ProcessorMixin = Idefics3Processor(
            image_processor, tokenizer, image_seq_len=seq_len, chat_template=IDEFICS_TEMPLATE
        )
    else:
        _ensure_num2words()
        image_processor = SmolVLMImageProcessorPil(
            size=size, max_image_size=size, do_image_splitting=False
        )
        processor = image_only(SmolVLMProcessor)(
            image_processor, tokenizer, image_seq_len=seq_len, chat_template=IDEFICS_TEMPLATE
        )
    return model, processor


def _ensure_num2words() -> None:
    """SmolVLMProcessor refuses to build without ``num2words``, which it uses only to word video
    frame counts; stand in a stub that refuses videos when the package is missing."""
    module = sys.modules["transformers.models.smolvlm.processing_smolvlm"]
    if getattr(module, "num2words", None) is None:

        def no_videos(number: int) -> str:
            raise NotImplementedError("video prompts need the num2words package")

        module.num2words = no_videos  # type: ignore[attr-defined]


def build_idefics3(text_layers: int = 3, vision_layers: int = 1) -> Built:
    return _idefics("idefics3", text_layers, vision_layers)


def build_smolvlm(text_layers: int = 3, vision_layers: int = 1) -> Built:
    return _idefics("smolvlm", text_layers, vision_layers)


# --- Gemma 3 / PaliGemma ------------------------------------------------------------------------

GEMMA_SPECIALS = [
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
]
GEMMA_TEMPLATE = (
    "<s>{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else "
    "m['role'] }}\n{% for c in m['content'] %}{% if c['type'] == 'image' %}<start_of_image>"
    "{% endif %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
SIGLIP_SIZE = 28  # 2x2 patches = 4 image tokens


def _siglip(vision_layers: int) -> dict[str, Any]:
    return {
        **_VISION,
        "model_type": "siglip_vision_model",
        "image_size": SIGLIP_SIZE,
        "patch_size": PATCH,
        "num_hidden_layers": vision_layers,
    }


def build_gemma3(text_layers: int = 3, vision_layers: int = 1) -> Built:
    tokens = FamilyTokens(GEMMA_SPECIALS)
    model = _build(
        "gemma3",
        0,
        tokens["<end_of_turn>"],
        text_config=_text(tokens, "gemma3_text", text_layers, sliding_window=8),
        vision_config=_siglip(vision_layers),
        mm_tokens_per_image=4,
        boi_token_index=tokens["<start_of_image>"],
        eoi_token_index=tokens["<end_of_image>"],
        image_token_index=tokens["<image_soft_token>"],
    )
    image_processor = Gemma3ImageProcessorPil(size={"height": SIGLIP_SIZE, "width": SIGLIP_SIZE})
    tokenizer = tokens.tokenizer(
        GEMMA_SPECIALS,
        boi_token="<start_of_image>",
        eoi_token="<end_of_image>",
        image_token="<image_soft_token>",
    )
    processor = Gemma3Processor(
        image_processor, tokenizer, chat_template=GEMMA_TEMPLATE, image_seq_length=4
    )
    return model, processor


def build_paligemma(text_layers: int = 3, vision_layers: int = 1) -> Built:
    tokens = FamilyTokens(["<image>"])
    model = _build(
        "paligemma",
        0,
        tokens["</s>"],
        text_config=_text(tokens, "gemma", text_layers),
        vision_config={**_siglip(vision_layers), "projection_dim": 32},
        image_token_index=tokens["<image>"],
        projection_dim=32,
        hidden_size=32,
    )
    image_processor = SiglipImageProcessorPil(size={"height": SIGLIP_SIZE, "width": SIGLIP_SIZE})
    image_processor.image_seq_length = 4  # type: ignore[attr-defined]  # PaliGemma reads it
    tokenizer = tokens.tokenizer(["<image>"], image_token="<image>")
    return model, PaliGemmaProcessor(image_processor, tokenizer)


# --- InternVL -----------------------------------------------------------------------------------

INTERNVL_SPECIALS = ["<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
INTERNVL_SIZE = 56  # 4x4 patches, pixel shuffle by 0.5: 4 image tokens


def build_internvl(text_layers: int = 3, vision_layers: int = 1) -> Built:
    tokens = FamilyTokens([*QWEN_SPECIALS, *INTERNVL_SPECIALS])
    model = _build(
        "internvl",
        0,
        tokens["<|im_end|>"],
        text_config=_text(tokens, "qwen2", text_layers),
        vision_config={
            **_VISION,
            "image_size": [INTERNVL_SIZE, INTERNVL_SIZE],
            "patch_size": [PATCH, PATCH],
            "num_hidden_layers": vision_layers,
        },
        image_token_id=tokens["<IMG_CONTEXT>"],
        downsample_ratio=0.5,
        vision_feature_layer=-1,
    )
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": INTERNVL_SIZE, "width": INTERNVL_SIZE}, max_patches=1
    )
    tokenizer = tokens.tokenizer(
        [*QWEN_SPECIALS, *INTERNVL_SPECIALS],
        start_image_token="<img>",
        end_image_token="</img>",
        context_image_token="<IMG_CONTEXT>",
        video_token="<video>",
    )
    processor = image_only(InternVLProcessor)(
        image_processor,
        tokenizer,
        image_seq_length=4,
        chat_template=_qwen_template("<IMG_CONTEXT>\n"),
    )
    return model, processor


# --- Mistral 3 ----------------------------------------------------------------------------------

PIXTRAL_SPECIALS = ["[IMG]", "[IMG_BREAK]", "[IMG_END]"]
MISTRAL_TEMPLATE = (
    "<s>{% for m in messages %}{% if m['role'] == 'user' %}[INST] "
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}[IMG]{% endif %}"
    "{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %} [/INST]"
    "{% else %}{% for c in m['content'] %}{{ c['text'] }}{% endfor %}</s>{% endif %}{% endfor %}"
)
PIXTRAL_SIZE = 56  # 4x4 patches, merged 2x2: 2 rows of 2 [IMG] + [IMG_BREAK], [IMG_END]


def pixtral_processor_class() -> type[ProcessorMixin]:
    """``PixtralProcessor`` without torchvision.

    transformers 5.24's ``processing_pixtral`` imports ``get_resize_output_image_size`` from the
    torchvision image processor module, so the class cannot be imported without torchvision. The
    PIL module defines the same function; it stands in for the missing module.
    """
    name = "transformers.models.pixtral.image_processing_pixtral"
    try:
        __import__(name)
    except ImportError:
        sys.modules[name] = image_processing_pil_pixtral
    from transformers.models.pixtral.processing_pixtral import PixtralProcessor

    return PixtralProcessor


def build_mistral3(text_layers: int = 3, vision_layers: int = 1) -> Built:
    tokens = FamilyTokens(PIXTRAL_SPECIALS)
    model = _build(
        "mistral3",
        0,
        tokens["</s>"],
        text_config=_text(tokens, "mistral", text_layers),
        vision_config={
            **_VISION,
            "model_type": "pixtral",
            "head_dim": 8,
            "image_size": PIXTRAL_SIZE,
            "patch_size": PATCH,
            "num_hidden_layers": vision_layers,
        },
        image_token_index=tokens["[IMG]"],
        spatial_merge_size=2,
        vision_feature_layer=-1,
    )
    image_processor = PixtralImageProcessorPil(
        size={"longest_edge": PIXTRAL_SIZE}, patch_size={"height": PATCH, "width": PATCH}
    )
    processor = pixtral_processor_class()(
        image_processor,
        tokens.tokenizer(PIXTRAL_SPECIALS),
        patch_size=PATCH,
        spatial_merge_size=2,
        chat_template=MISTRAL_TEMPLATE,
    )
    return model, processor


FAMILY_BUILDERS: dict[str, Callable[..., Built]] = {
    "llava": build_llava,
    "llava_next": build_llava_next,
    "llava_onevision": build_llava_onevision,
    "qwen2_vl": build_qwen2_vl,
    "qwen2_5_vl": build_qwen2_5_vl,
    "idefics3": build_idefics3,
    "smolvlm": build_smolvlm,
    "gemma3": build_gemma3,
    "paligemma": build_paligemma,
    "internvl": build_internvl,
    "mistral3": build_mistral3,
}


def tiny_vlm(family: str, *, text_layers: int = 3, vision_layers: int = 1) -> Built:
    """A tiny model of ``family`` and its offline processor."""
    return FAMILY_BUILDERS[family](text_layers=text_layers, vision_layers=vision_layers)


PLACEHOLDERS: dict[str, str] = {
    "llava": "<image> ",
    "llava_next": "<image> ",
    "llava_onevision": "<image>\n",
    "qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "qwen2_5_vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "idefics3": "<image>",
    "smolvlm": "<image>",
    "gemma3": "<start_of_image>",
    "paligemma": "",  # prompted raw: the processor itself puts the image tokens before the prompt
    "internvl": "<IMG_CONTEXT>\n",
    "mistral3": "[IMG]",
}
"""What each family's chat template writes for an image; the text variant lacks exactly this."""
