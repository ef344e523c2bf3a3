"""Evaluation presets by name (``cmrm eval --preset NAME``): functions that build an
:class:`~cmrm.evaluation.config.EvalConfig`.

:data:`PRESETS` is a :class:`cmrm.base.registry.Registry`; a preset is a function
``preset(model, *, judge_model=..., **overrides) -> EvalConfig``. A new one is one line::

    PRESETS.register("name", "package.module:function", description="...")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..base.errors import ConfigError, UnknownNameError
from ..base.registry import Registry

if TYPE_CHECKING:
    from .config import EvalConfig


class Preset(Protocol):
    """``preset(model, **options) -> EvalConfig`` (options: ``judge_model=`` and field overrides)."""

    def __call__(self, model: str, **options: Any) -> EvalConfig: ...


PRESETS: Registry[Preset] = Registry("preset", callables=True)
PRESETS.register(
    "paper",
    "cmrm.evaluation.config:paper_preset",
    description="the paper's protocol: VLSafe 20/80, JailbreakLLMs + null image, "
    "LLaVA-Bench-COCO, ScienceQA-IMG; none/dataset/sample; alpha 0.1-1.5; an LLM judge",
)


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ConfigError: no such preset (with a did-you-mean suggestion).
    """
    try:
        return PRESETS.get(name)
    except UnknownNameError as err:
        raise ConfigError(str(err)) from None
