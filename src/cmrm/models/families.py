"""Per-family facts for the supported VLM families.

All supported families keep their text decoder under ``model.get_decoder()`` (checked on tiny
models of each family; see ``tests/test_families.py``), so layer location needs no table. What does
differ between families, and lives here, is how prompts and images go into the processor and which
token ids mark image positions in the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..base.errors import UnsupportedModelError
from ..base.registry import Registry, instance_of


@dataclass(frozen=True)
class FamilySpec:
    """How one VLM family takes its inputs."""

    name: str
    model_types: tuple[str, ...]
    example: str
    nested_images: bool = False
    """The processor wants one list of images per row (``[[img], []]``) rather than a flat list."""
    mixed_batches: bool = True
    """Rows with and without an image can share one processor call."""
    chat_template: bool = True
    """Prompts go through the processor's chat template (PaliGemma is prompted raw)."""
    extra_image_tokens: tuple[str, ...] = ()
    """Special tokens that belong to an image block besides the image token itself."""
    causal_image_prefix: bool = False
    """The image block sits in the token sequence before the text, attends causally and uses
    plain 1-D positions, so the tokens up to its end can be run once and reused for every row
    with the same image (:mod:`cmrm.calibration.prefix`; each prefix is checked on first use)."""
    text_rows_by_tokenizer: bool = False
    """The processor refuses calls without images (PaliGemma): text-only batches are tokenised
    directly in the processor's prefix layout, ``bos + prompt + "\\n"``, with token type ids."""


FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec("llava", ("llava",), "llava-hf/llava-1.5-7b-hf", causal_image_prefix=True),
    FamilySpec(
        "llava_next",
        ("llava_next",),
        "llava-hf/llava-v1.6-mistral-7b-hf",
        causal_image_prefix=True,
    ),
    FamilySpec(
        "llava_onevision",
        ("llava_onevision",),
        "llava-hf/llava-onevision-qwen2-7b-ov-hf",
        causal_image_prefix=True,
    ),
    FamilySpec(
        "qwen2_vl",
        ("qwen2_vl",),
        "Qwen/Qwen2-VL-7B-Instruct",
        extra_image_tokens=("<|vision_start|>", "<|vision_end|>"),
    ),
    FamilySpec(
        "qwen2_5_vl",
        ("qwen2_5_vl",),
        "Qwen/Qwen2.5-VL-7B-Instruct",
        extra_image_tokens=("<|vision_start|>", "<|vision_end|>"),
    ),
    FamilySpec(
        "idefics3",
        ("idefics3",),
        "HuggingFaceM4/Idefics3-8B-Llama3",
        causal_image_prefix=True,
        nested_images=True,
        extra_image_tokens=("<fake_token_around_image>", "<global-img>"),
    ),
    FamilySpec(
        "smolvlm",
        ("smolvlm",),
        "HuggingFaceTB/SmolVLM2-2.2B-Instruct",  # SmolVLM v1 checkpoints are model_type idefics3
        causal_image_prefix=True,
        nested_images=True,
        extra_image_tokens=("<fake_token_around_image>", "<global-img>"),
    ),
    FamilySpec(
        "gemma3",
        ("gemma3",),
        "google/gemma-3-4b-it",
        nested_images=True,
        extra_image_tokens=("<start_of_image>", "<end_of_image>"),
    ),
    FamilySpec(
        "paligemma",
        ("paligemma",),
        "google/paligemma-3b-mix-224",
        mixed_batches=False,
        chat_template=False,
        text_rows_by_tokenizer=True,
    ),
    FamilySpec(
        "internvl",
        ("internvl",),
        "OpenGVLab/InternVL3-1B-hf",
        causal_image_prefix=True,
        extra_image_tokens=("<img>", "</img>"),
    ),
    FamilySpec(
        "mistral3",
        ("mistral3",),
        "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
        causal_image_prefix=True,
        extra_image_tokens=("[IMG_BREAK]", "[IMG_END]"),
    ),
)

FAMILY_REGISTRY: Registry[FamilySpec] = Registry("VLM family", check=instance_of(FamilySpec))
"""Families by name; each ``model_type`` other than the name is an alias."""
for _spec in FAMILIES:
    FAMILY_REGISTRY.register(
        _spec.name,
        _spec,
        description=f"e.g. {_spec.example}",
        aliases=[t for t in _spec.model_types if t != _spec.name],
    )


def family_for(model_type: str) -> FamilySpec:
    """The spec of a ``config.model_type`` (or a family name).

    Raises:
        UnsupportedModelError: the family is not supported; lists those that are.
    """
    if model_type in FAMILY_REGISTRY:
        return FAMILY_REGISTRY.get(model_type)
    story = ""
    if model_type == "mllama":
        story = (
            " Llama-3.2-Vision attends to images through cross-attention layers, so there are no "
            "image tokens in the sequence to contrast with; CMRM as defined does not apply."
        )
    known = sorted({t for spec in FAMILY_REGISTRY.values() for t in spec.model_types})
    raise UnsupportedModelError(
        f"model_type {model_type!r} is not a supported VLM family.{story} Supported: "
        f"{', '.join(known)}. A model of a supported architecture under another "
        "model_type can be used through cmrm.from_model(model, processor, family=NAME, "
        "layers_path=...)."
    )
