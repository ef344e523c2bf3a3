"""Apply an :class:`~cmrm.interventions.value.Intervention` to one batch.

Dataset-level vectors are fixed; sample-level vectors are computed for the batch first (two
extra prefill passes, text and null/image variants, batched together), so the context manager
needs the batch's prompts and images. Everything is validated before a hook exists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from PIL import Image

from ..calibration.estimate import sample_shifts
from ..models.vlm import VLM
from .steering import steer
from .value import Intervention


def intervene(
    vlm: VLM,
    intervention: Intervention | None,
    prompts: Sequence[str],
    images: Sequence[Image.Image | None],
) -> contextlib.AbstractContextManager[Any]:
    """A context manager that steers ``vlm`` for this batch (a no-op for ``None``).

    Example:
        >>> with intervene(vlm, iv, prompts, images):
        ...     out = vlm.model.generate(**vlm.encode(prompts, images).inputs)
    """
    if intervention is None:
        return contextlib.nullcontext()
    iv = intervention
    layers = iv.layers if iv.layers is not None else "all"
    axes = iv.shift.axes if iv.shift is not None else None
    if iv.source == "dataset":
        assert iv.shift is not None  # checked by Intervention
        return steer(
            vlm,
            iv.shift,
            alpha=iv.alpha,
            layers=layers,
            positions=iv.positions,
            generated=iv.generated,
            operator=iv.operator,
            axes=axes,
        )
    chosen = vlm.layers.resolve(None if layers == "all" else layers)
    shift = sample_shifts(vlm, prompts, images, null=iv.null, contrast=iv.contrast, layers=chosen)
    return steer(
        vlm,
        shift,
        alpha=iv.alpha,
        positions=iv.positions,
        generated=iv.generated,
        operator=iv.operator,
        axes=axes,
    )
