"""Offline environment, seeding and shared tiny-model fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import pytest
import torch
from PIL import Image

from cmrm.models import VLM, from_model

from .tiny_models import llava_processor, tiny_llava

# Tiny models run faster on one thread than on two contended ones (measured: ~8x on 2 cores).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def vlm() -> VLM:
    return from_model(tiny_llava(), llava_processor(), model_id="tiny-llava")


@pytest.fixture
def image() -> Image.Image:
    return Image.new("RGB", (40, 30), "red")


@pytest.fixture(scope="session")
def saved_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LLaVA and its processor saved with save_pretrained, for loading and CLI tests."""
    path = tmp_path_factory.mktemp("tiny-llava")
    tiny_llava().save_pretrained(path)
    llava_processor().save_pretrained(path)
    return path
