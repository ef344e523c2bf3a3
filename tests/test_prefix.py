"""The null image's prompt prefix, run once and reused by sample-level shifts: the same
differences as the ordinary pass, on every family that claims it; the first-use check refuses a
family whose prefix is not causal; hooks, read position and other contrasts keep the ordinary
pass."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

from cmrm.calibration import prefix
from cmrm.calibration.contrast import differences
from cmrm.calibration.estimate import sample_shifts
from cmrm.data.images import NullImage
from cmrm.interventions.steering import steer
from cmrm.models import VLM, from_model
from cmrm.models.families import FAMILIES

from .test_steer import random_shift
from .tiny_families import tiny_vlm

PROMPTS = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10"]
CLAIMED = [f.name for f in FAMILIES if f.causal_image_prefix]


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    prefix.clear()
    yield
    prefix.clear()


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())


def diffs(vlm: VLM, prompts: list[str], image: Image.Image, **kw: Any) -> torch.Tensor:
    layers = tuple(range(vlm.num_layers))
    return differences(
        vlm, prompts, [image] * len(prompts), null=NullImage(), contrast="null", layers=layers, **kw
    )


class TokenCounter:
    """Counts the token positions the input embedding sees (not a decoder-layer hook, which
    would turn the prefix off)."""

    def __init__(self, vlm: VLM) -> None:
        self.widths: list[int] = []
        self.handle = vlm.model.get_input_embeddings().register_forward_hook(self.record)

    def record(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self.widths.append(int(args[0].shape[1]))


def test_families_claiming_it_are_the_ones_where_it_holds() -> None:
    assert set(CLAIMED) == {
        "llava",
        "llava_next",
        "llava_onevision",
        "idefics3",
        "smolvlm",
        "internvl",
        "mistral3",
    }


@pytest.mark.parametrize("family", CLAIMED)
def test_reused_prefix_gives_the_ordinary_differences(family: str, image: Image.Image) -> None:
    model, processor = tiny_vlm(family)
    vlm = from_model(model, processor)
    ordinary = diffs(vlm, PROMPTS, image)
    first = diffs(vlm, PROMPTS, image, reuse_prefix=True)  # computes and checks the prefix
    assert prefix.prefix_count(vlm) == 1
    assert relative(first, ordinary) < 1e-5

    null_rows = vlm.encode(PROMPTS, [NullImage().like(image, vlm.image_mean)] * 3)
    image_block, full = int(null_rows.image_mask[0].sum()), int(null_rows.input_ids.shape[1])
    counter = TokenCounter(vlm)
    again = diffs(vlm, PROMPTS[::-1], image, reuse_prefix=True)
    counter.handle.remove()
    assert relative(again.flip(1), ordinary) < 1e-5
    # two passes, text rows and null rows on the prefix: the null rows' pass is their text only
    assert len(counter.widths) == 2
    assert counter.widths[1] <= full - image_block
    assert max(counter.widths) < full


def test_sample_shifts_reuse_the_prefix(vlm: VLM, image: Image.Image) -> None:
    images: list[Image.Image | None] = [image, None, image]
    first = sample_shifts(vlm, PROMPTS, images, layers="all")
    assert prefix.prefix_count(vlm) == 1
    second = sample_shifts(vlm, PROMPTS, images, layers="all")
    ordinary = diffs(vlm, [PROMPTS[0], PROMPTS[2]], image)
    assert relative(second.vectors[:, [0, 2]], ordinary) < 1e-5
    assert relative(first.vectors[:, [0, 2]], ordinary) < 1e-5
    assert torch.equal(second.vectors[:, 1], torch.zeros_like(second.vectors[:, 1]))


def test_a_family_whose_prefix_is_not_causal_is_caught_on_first_use(
    image: Image.Image, caplog: pytest.LogCaptureFixture
) -> None:
    """PaliGemma's image and prompt attend to each other (a prefix LM): claiming the prefix for
    it anyway, the first-use check sees the states differ and turns it off."""
    model, processor = tiny_vlm("paligemma")
    vlm = from_model(model, processor)
    claimed = dataclasses.replace(vlm, spec=dataclasses.replace(vlm.spec, causal_image_prefix=True))
    ordinary = diffs(vlm, PROMPTS, image)
    with caplog.at_level(logging.WARNING, logger="cmrm.calibration.prefix"):
        first = diffs(claimed, PROMPTS, image, reuse_prefix=True)
    assert "differ from the ordinary pass" in caplog.text
    assert prefix.prefix_count(claimed) == 0
    assert relative(first, ordinary) < 1e-5
    assert relative(diffs(claimed, PROMPTS, image, reuse_prefix=True), ordinary) < 1e-5


def test_unclaimed_families_hooks_and_mean_reads_keep_the_ordinary_pass(
    vlm: VLM, image: Image.Image
) -> None:
    unclaimed = dataclasses.replace(
        vlm, spec=dataclasses.replace(vlm.spec, causal_image_prefix=False)
    )
    diffs(unclaimed, PROMPTS, image, reuse_prefix=True)
    assert prefix.prefix_count(vlm) == 0

    diffs(vlm, PROMPTS, image, reuse_prefix=True, read="mean")
    assert prefix.prefix_count(vlm) == 0

    # under steering a prefix would hold steered states: not computed, and not used
    with steer(vlm, random_shift(vlm), alpha=1.0):
        diffs(vlm, PROMPTS, image, reuse_prefix=True)
    assert prefix.prefix_count(vlm) == 0
    diffs(vlm, PROMPTS, image, reuse_prefix=True)
    assert prefix.prefix_count(vlm) == 1
    counter = TokenCounter(vlm)
    with steer(vlm, random_shift(vlm), alpha=1.0):
        diffs(vlm, PROMPTS, image, reuse_prefix=True)
    counter.handle.remove()
    assert len(counter.widths) == 1  # the ordinary single pass, image rows and text rows


def test_at_most_a_few_prefixes_are_kept(vlm: VLM, image: Image.Image) -> None:
    layers = tuple(range(vlm.num_layers))
    colours = ["white", "black", "red", "blue"]
    assert len(colours) > prefix.MAX_PREFIXES
    for colour in colours:
        null = NullImage(colour=colour)
        kw: dict[str, Any] = dict(null=null, contrast="null", layers=layers)
        reused = differences(vlm, PROMPTS, [image] * 3, reuse_prefix=True, **kw)
        assert relative(reused, differences(vlm, PROMPTS, [image] * 3, **kw)) < 1e-5
    assert prefix.prefix_count(vlm) == prefix.MAX_PREFIXES
