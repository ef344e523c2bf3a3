"""Per-sample differences between the text-only variant of a query and its contrast variant.

For a query ``x`` with image ``I``: ``d_l(x) = h_l(text) - h_l(null)`` (contrast ``null``: a
meaningless image of the same size, the paper's) or ``h_l(text) - h_l(x, I)`` (contrast
``image``: the shift the real image causes). Both variants of a batch go through the model in one
pass. The estimators (:mod:`cmrm.calibration.estimate`, :mod:`cmrm.calibration.sequential`) reduce these differences.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torch import Tensor

from ..base.errors import CmrmError, DataError
from ..data.images import NullImage
from ..models.vlm import VLM
from .capture import capture_states
from .names import CONTRASTS, ESTIMATORS, Contrast, Estimator, ReadPosition  # noqa: F401  (old home)
from .prefix import prefixed_states


def contrast_images(
    vlm: VLM, images: Sequence[Image.Image | None], null: NullImage, contrast: Contrast
) -> list[Image.Image | None]:
    """The images of the contrast variant: each row's null image, or its real image."""
    if contrast not in CONTRASTS:
        raise CmrmError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    if contrast == "image":
        missing = [i for i, img in enumerate(images) if img is None]
        if missing:
            raise DataError(
                f"contrast 'image' needs an image for every input; rows {missing[:5]} have none "
                "(use contrast 'null' or give those rows images)"
            )
        return list(images)
    return [null.like(img, vlm.image_mean) for img in images]


def paired_states(
    vlm: VLM,
    prompts: Sequence[str],
    images: Sequence[Image.Image | None],
    *,
    null: NullImage,
    contrast: Contrast,
    layers: tuple[int, ...],
    read: ReadPosition = "last",
    reuse_prefix: bool = False,
) -> tuple[Tensor, Tensor]:
    """``(h(text), h(contrast variant))``, each ``[n_layers, B, hidden]`` float32, from one
    batched pass.

    ``reuse_prefix`` (contrast ``null``, read ``last``): the null rows run on the null image's
    stored prompt prefix where the family allows it (:mod:`cmrm.calibration.prefix`), and the
    text rows in their own, short pass, instead of one pass padded to the image rows' length.
    """
    others = contrast_images(vlm, images, null, contrast)
    n = len(prompts)
    if reuse_prefix and contrast == "null" and read == "last" and vlm.spec.causal_image_prefix:
        other = prefixed_states(vlm, vlm.encode(prompts, others), layers)
        if other is not None:
            text = capture_states(vlm, prompts, [None] * n, layers=layers, read=read)
            return text, other
    states = capture_states(
        vlm, [*prompts, *prompts], [*([None] * n), *others], layers=layers, read=read
    )
    return states[:, :n], states[:, n:]


def differences(
    vlm: VLM,
    prompts: Sequence[str],
    images: Sequence[Image.Image | None],
    *,
    null: NullImage,
    contrast: Contrast,
    layers: tuple[int, ...],
    read: ReadPosition = "last",
    reuse_prefix: bool = False,
) -> Tensor:
    """``h(text) - h(contrast variant)`` for each row: ``[n_layers, B, hidden]`` float32."""
    text, other = paired_states(
        vlm,
        prompts,
        images,
        null=null,
        contrast=contrast,
        layers=layers,
        read=read,
        reuse_prefix=reuse_prefix,
    )
    return text - other


def pc1_vector(diffs: Tensor) -> Tensor:
    """``[N, hidden]`` -> the scaled, sign-aligned first principal direction."""
    mean = diffs.mean(dim=0)
    _, _, vh = torch.linalg.svd(diffs.double(), full_matrices=False)
    direction = vh[0].float()
    if torch.dot(direction, mean) < 0:
        direction = -direction
    scale = (diffs @ direction).mean()
    return torch.mul(direction, scale)  # typed (Tensor.__mul__ is not, for mypy)
