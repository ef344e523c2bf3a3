"""Training the SmolLM2 organism: the miniature CLI run works and is deterministic; the full
recipe reproduces the shipped deltas (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from cmrm.cli import app
from cmrm.organisms.smol import load_smol_organism
from cmrm.organisms.smol.loading import SMOL_DIR, read_manifest


def _train(out: Path, *extra: str) -> None:
    result = CliRunner().invoke(
        app, ["organism", "train", "--recipe", "smol", "--quick", "-o", str(out), *extra]
    )
    assert result.exit_code == 0, result.output


def test_quick_smol_training_writes_loadable_deltas_deterministically(tmp_path: Path) -> None:
    _train(tmp_path / "a")
    files = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"organism.json", "adapter.safetensors", "vision.safetensors", "recipe.json"} <= files
    manifest = read_manifest(tmp_path / "a")
    assert manifest["tower"]["hidden"] == 32 and manifest["lora"]["r"] == 2
    recipe = json.loads((tmp_path / "a" / "recipe.json").read_text())
    assert recipe["recipe"]["safety_steps"] == 2 and "versions" in recipe
    model, processor = load_smol_organism(tmp_path / "a")
    assert model.config.model_type == "llava" and processor.tokenizer.padding_side == "left"
    _train(tmp_path / "b")
    for name in ("adapter.safetensors", "vision.safetensors"):
        first, second = load_file(str(tmp_path / "a" / name)), load_file(str(tmp_path / "b" / name))
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first), name


@pytest.mark.slow
def test_the_recipe_reproduces_the_shipped_deltas(tmp_path: Path) -> None:
    """The full recipe (about 45 CPU-minutes on one thread) gives the shipped tensors bit for bit
    on the software and CPU they were trained with (recipe.json records the versions)."""
    result = CliRunner().invoke(
        app, ["organism", "train", "--recipe", "smol", "-o", str(tmp_path), "--seed", "0"]
    )
    assert result.exit_code == 0, result.output
    for name in ("adapter.safetensors", "vision.safetensors"):
        shipped, again = load_file(str(SMOL_DIR / name)), load_file(str(tmp_path / name))
        assert shipped.keys() == again.keys()
        different = [k for k in shipped if not torch.equal(shipped[k], again[k])]
        assert not different, f"{name}: {different[:5]}"
