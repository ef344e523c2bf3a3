"""A method of the evaluation grid: an :class:`~cmrm.interventions.value.Intervention` on the
hidden states, or a :class:`~cmrm.generation.baselines.Baseline` that changes the input."""

from __future__ import annotations

from collections.abc import Sequence

from ..data.items import Item
from ..interventions.value import Intervention
from ..models.vlm import VLM
from .baselines import Baseline, run_baseline
from .generate import GenerationOptions, generate_items
from .names import METHOD_NAMES  # noqa: F401  (old home)

Method = Intervention | Baseline


def generate_method(
    vlm: VLM,
    items: Sequence[Item],
    method: Method | None,
    options: GenerationOptions | None = None,
    *,
    batch_size: int = 8,
    show_progress: bool = False,
) -> list[str]:
    """Answers for ``items`` under ``method`` (``None`` = the model as it is), in order."""
    if isinstance(method, Baseline):
        return run_baseline(
            vlm, items, method, options, batch_size=batch_size, show_progress=show_progress
        )
    return generate_items(
        vlm, items, method, options, batch_size=batch_size, show_progress=show_progress
    )
