"""Estimate shift vectors: dataset-level (``mean``, ``pc1``) and sample-level.

For a query ``x`` with image ``I`` and a null image ``I0`` (see :mod:`cmrm.images`), the
per-sample difference at layer ``l`` is ``d_l(x) = h_l(text) - h_l(null)`` (contrast ``null``, the
paper's) or ``h_l(text) - h_l(x, I)`` (contrast ``image``: the shift real images cause). Both
variants of a query go through the model in one batch.

- ``mean``: ``v_l = mean_i d_l(x_i)``, accumulated as a running sum: memory O(layers x hidden)
  whatever the anchor-set size.
- ``pc1``: the first principal direction ``u`` of the stacked differences (uncentred, i.e. the
  first right singular vector, so that it describes the shift itself rather than its spread around
  the mean), sign-aligned with the mean and scaled by the mean projection ``mean_i <d_i, u>``, so
  that ``alpha = 1`` is comparable to ``mean``. Needs the differences: O(anchors x layers x hidden).
- sample-level: ``v_l(x) = d_l(x)`` for each input, from the same batched pass.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Literal

import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from .capture import ReadPosition, capture_states
from .distributed import SINGLE, World
from .errors import CmrmError, DataError
from .images import NullImage, load_image
from .items import Item
from .models.vlm import VLM
from .reduction import Partial, reduce_partial, shard_batches
from .shift import SampleShift, ShiftMeta, ShiftVectors

logger = logging.getLogger(__name__)

Estimator = Literal["mean", "pc1"]
Contrast = Literal["null", "image"]
ESTIMATORS: tuple[str, ...] = ("mean", "pc1")
CONTRASTS: tuple[str, ...] = ("null", "image")


def differences(
    vlm: VLM,
    prompts: Sequence[str],
    images: Sequence[Image.Image | None],
    *,
    null: NullImage,
    contrast: Contrast,
    layers: tuple[int, ...],
    read: ReadPosition = "last",
) -> Tensor:
    """``h(text) - h(contrast variant)`` for each row: ``[n_layers, B, hidden]`` float32."""
    if contrast not in CONTRASTS:
        raise CmrmError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    if contrast == "image":
        missing = [i for i, img in enumerate(images) if img is None]
        if missing:
            raise DataError(
                f"contrast 'image' needs an image for every input; rows {missing[:5]} have none "
                "(use contrast 'null' or give those rows images)"
            )
        others: list[Image.Image | None] = list(images)
    else:
        others = [null.like(img, vlm.image_mean) for img in images]
    n = len(prompts)
    states = capture_states(
        vlm, [*prompts, *prompts], [*([None] * n), *others], layers=layers, read=read
    )
    return states[:, :n] - states[:, n:]


def sample_shifts(
    vlm: VLM,
    prompts: Sequence[str],
    images: Sequence[Image.Image | None],
    *,
    null: NullImage | None = None,
    contrast: Contrast = "null",
    layers: str | int | Sequence[int] | None = None,
    read: ReadPosition = "last",
) -> SampleShift:
    """Per-row shift vectors; rows without an image get zeros (they are never shifted)."""
    chosen = vlm.layers.resolve(layers)
    rows = [i for i, img in enumerate(images) if img is not None]
    vectors = torch.zeros(len(chosen), len(prompts), vlm.hidden_size)
    if rows:
        diffs = differences(
            vlm,
            [prompts[i] for i in rows],
            [images[i] for i in rows],
            null=null or NullImage(),
            contrast=contrast,
            layers=chosen,
            read=read,
        )
        vectors[:, rows] = diffs
    return SampleShift(layers=chosen, vectors=vectors)


def anchor_hash(items: Sequence[Item]) -> str:
    """A hash of the anchor set's ids, prompts and images, recorded with the shift."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.id.encode())
        digest.update(b"\0" + item.prompt.encode() + b"\0")
        if isinstance(item.image, Image.Image):
            digest.update(hashlib.sha256(item.image.tobytes()).digest())
        elif item.image is not None:
            digest.update(str(item.image).encode())
    return digest.hexdigest()[:16]


def _pc1(diffs: Tensor) -> Tensor:
    """``[N, hidden]`` -> the scaled, sign-aligned first principal direction."""
    mean = diffs.mean(dim=0)
    _, _, vh = torch.linalg.svd(diffs.double(), full_matrices=False)
    direction = vh[0].float()
    if torch.dot(direction, mean) < 0:
        direction = -direction
    scale = (diffs @ direction).mean()
    return direction * scale


def calibrate(
    vlm: VLM,
    items: Sequence[Item],
    *,
    null: NullImage | None = None,
    estimator: Estimator = "mean",
    layers: str | int | Sequence[int] | None = None,
    contrast: Contrast = "null",
    read: ReadPosition = "last",
    batch_size: int = 8,
    show_progress: bool = False,
    world: World = SINGLE,
) -> ShiftVectors:
    """Estimate a dataset-level shift over an anchor set.

    With ``world`` of several ranks (every rank calls this with the same anchors), each rank runs
    its share of the batches and the partial sums are reduced across ranks (see
    :mod:`cmrm.reduction`); every rank returns the same shift.

    Raises:
        CmrmError: empty anchor set, unknown estimator, bad batch size.
        DataError: an image is missing or undecodable (the message names it).
    """
    if estimator not in ESTIMATORS:
        raise CmrmError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if batch_size < 1:
        raise CmrmError(f"batch size must be at least 1, got {batch_size}")
    if not items:
        raise CmrmError("the anchor set is empty; calibration needs at least one item")
    null = null or NullImage()
    chosen = vlm.layers.resolve(layers)
    part = Partial.empty(len(chosen), vlm.hidden_size, keep=estimator == "pc1")
    starts = shard_batches(len(items), batch_size, world)
    for start in tqdm(starts, desc="calibrating", disable=not show_progress, unit="batch"):
        chunk = items[start : start + batch_size]
        images = [load_image(item.image) for item in chunk]
        diffs = differences(
            vlm,
            [item.prompt for item in chunk],
            images,
            null=null,
            contrast=contrast,
            layers=chosen,
            read=read,
        )
        part = part.add(start, diffs)
    part = reduce_partial(part, world)
    if estimator == "mean":
        vectors = part.mean()
    else:
        stacked = part.ordered_rows()
        vectors = torch.stack([_pc1(stacked[i]) for i in range(len(chosen))])
    meta = ShiftMeta(
        source_model=vlm.model_id,
        model_type=vlm.model_type,
        hidden_size=vlm.hidden_size,
        num_layers=vlm.num_layers,
        estimator=estimator,
        null_image=null.spec if contrast == "null" else "none",
        contrast=contrast,
        read_position=read,
        anchor_count=len(items),
        anchor_hash=anchor_hash(items),
    )
    logger.info("calibrated %s shift on %d anchors", estimator, len(items))
    return ShiftVectors(layers=chosen, vectors=vectors, meta=meta)
