"""Estimate shift vectors: dataset-level (``mean``, ``pc1``) and sample-level.

For a query ``x`` with image ``I`` and a null image ``I0`` (see :mod:`cmrm.data.images`), the
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
- ``sequential=True`` (:mod:`cmrm.calibration.sequential`): layer ``l``'s vector is measured with layers
  ``< l`` already steered, so that at the calibration alpha the steered anchor states match the
  text-only ones at *every* layer instead of overshooting as the shifts compound.

When the anchors carry ``kind`` (harmful and benign), the same pass also yields the **safety
axes** (:mod:`cmrm.calibration.axes`) that the ``project`` and ``gated`` operators need.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..base.distributed import SINGLE, World
from ..base.errors import CmrmError
from ..data.images import NullImage, load_image
from ..data.items import Item
from ..models.vlm import VLM
from .axes import SafetyAxes, fit_gate
from .contrast import differences, paired_states, pc1_vector
from .names import ESTIMATORS, Contrast, Estimator, ReadPosition
from .reduction import Partial, reduce_partial, shard_batches
from .shift import SampleShift, ShiftMeta, ShiftVectors
from .spill import DEFAULT_BUDGET

logger = logging.getLogger(__name__)


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
    """Per-row shift vectors; rows without an image get zeros (they are never shifted).

    With the null contrast the null image's prompt prefix is run once per model and reused
    (:mod:`cmrm.calibration.prefix`): the extra prefill is the text's tokens, not the prompt's.
    """
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
            reuse_prefix=True,
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


def safety_axes(
    layers: tuple[int, ...],
    text: dict[str, Partial],
    image: dict[str, Partial],
) -> SafetyAxes | None:
    """Safety axes from the text-only states of harmful and benign anchors (and the threshold
    from their contrast-variant states), or None (with a log line) when the anchors lack either
    kind."""
    harmful, benign = text["harmful"], text["benign"]
    if not (harmful.count and benign.count):
        logger.info(
            "no safety axes: the anchors need both harmful and benign kinds (got %d and %d)",
            harmful.count,
            benign.count,
        )
        return None
    return SafetyAxes.from_means(
        layers,
        harmful.mean(),
        benign.mean(),
        image["harmful"].mean(),
        image["benign"].mean(),
    )


KINDS = ("harmful", "benign")


def check_calibration(estimator: str, batch_size: int, items: Sequence[Item]) -> None:
    """Raise CmrmError for an unknown estimator, a bad batch size or an empty anchor set."""
    if estimator not in ESTIMATORS:
        raise CmrmError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if batch_size < 1:
        raise CmrmError(f"batch size must be at least 1, got {batch_size}")
    if not items:
        raise CmrmError("the anchor set is empty; calibration needs at least one item")


def calibrate(
    vlm: VLM,
    items: Sequence[Item],
    *,
    null: NullImage | None = None,
    estimator: Estimator = "mean",
    layers: str | int | Sequence[int] | None = None,
    contrast: Contrast = "null",
    read: ReadPosition = "last",
    sequential: bool = False,
    calibration_alpha: float = 1.0,
    positions: str = "all",
    batch_size: int = 8,
    show_progress: bool = False,
    world: World = SINGLE,
    gate: bool = False,
    carry_budget: int | None = DEFAULT_BUDGET,
) -> ShiftVectors:
    """Estimate a dataset-level shift over an anchor set (plus safety axes when the anchors
    carry harmful and benign kinds).

    Args:
        sequential: measure layer ``l`` with layers ``< l`` steered (``add``, at
            ``calibration_alpha`` and ``positions``), so the shifts do not compound.
        gate: also fit the safety axes' null-space-constrained read-out (the ``alphasteer``
            operator's; see :func:`cmrm.calibration.axes.fit_gate`). Keeps the anchors'
            contrast-variant states: memory O(anchors x layers x hidden) instead of
            O(layers x hidden).
        carry_budget: sequential only: bytes of carried anchor states kept in memory (on the
            model's device) between layers; beyond it they wait on disk, one batch in memory at
            a time (:mod:`cmrm.calibration.spill`). None: always in memory; 0: always on disk.

    With ``world`` of several ranks (every rank calls this with the same anchors), each rank runs
    its share of the batches and the partial sums are reduced across ranks (see
    :mod:`cmrm.calibration.reduction`); every rank returns the same shift.

    Raises:
        CmrmError: empty anchor set, unknown estimator, bad batch size.
        DataError: an image is missing or undecodable (the message names it).
    """
    check_calibration(estimator, batch_size, items)
    null = null or NullImage()
    chosen = vlm.layers.resolve(layers)
    n, hidden = len(chosen), vlm.hidden_size
    keep = estimator == "pc1"
    diff_part = Partial.empty(n, hidden, keep=keep)
    text_part = Partial.empty(n, hidden, keep=keep and sequential)
    kind_parts = {kind: Partial.empty(n, hidden) for kind in KINDS}
    image_parts = {kind: Partial.empty(n, hidden, keep=gate) for kind in KINDS}
    starts = shard_batches(len(items), batch_size, world)
    for start in tqdm(starts, desc="calibrating", disable=not show_progress, unit="batch"):
        chunk = items[start : start + batch_size]
        images = [load_image(item.image) for item in chunk]
        text, other = paired_states(
            vlm,
            [item.prompt for item in chunk],
            images,
            null=null,
            contrast=contrast,
            layers=chosen,
            read=read,
        )
        diff_part = diff_part.add(start, text - other)
        text_part = text_part.add(start, text)
        for kind in KINDS:
            rows = [i for i, item in enumerate(chunk) if item.kind == kind]
            if rows:
                kind_parts[kind] = kind_parts[kind].add(start, text[:, rows])
                image_parts[kind] = image_parts[kind].add(start, other[:, rows])
    diff_part = reduce_partial(diff_part, world)
    text_part = reduce_partial(text_part, world)
    kind_parts = {kind: reduce_partial(part, world) for kind, part in kind_parts.items()}
    image_parts = {kind: reduce_partial(part, world) for kind, part in image_parts.items()}
    if sequential:
        from .sequential import sequential_vectors

        text_states = text_part.ordered_rows() if keep else text_part.mean()[:, None, :]
        vectors = sequential_vectors(
            vlm,
            items,
            text_states,
            layers=chosen,
            null=null,
            contrast=contrast,
            estimator=estimator,
            read=read,
            alpha=calibration_alpha,
            positions=positions,
            batch_size=batch_size,
            show_progress=show_progress,
            world=world,
            carry_budget=carry_budget,
        )
    elif estimator == "mean":
        vectors = diff_part.mean()
    else:
        stacked = diff_part.ordered_rows()
        vectors = torch.stack([pc1_vector(stacked[i]) for i in range(n)])
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
        sequential=sequential,
        calibration=(
            {"alpha": float(calibration_alpha), "positions": positions, "operator": "add"}
            if sequential
            else {}
        ),
    )
    logger.info("calibrated %s shift on %d anchors", estimator, len(items))
    axes = safety_axes(chosen, kind_parts, image_parts)
    if gate and axes is not None:
        harmful, benign = (
            image_parts["harmful"].ordered_rows(),
            image_parts["benign"].ordered_rows(),
        )
        axes = axes.with_gate(torch.stack([fit_gate(harmful[i], benign[i]) for i in range(n)]))
    elif gate:
        raise CmrmError(
            "a gate (for the alphasteer operator) needs anchors of both kinds, harmful and "
            "benign; these anchors lack one"
        )
    return ShiftVectors(layers=chosen, vectors=vectors, meta=meta, axes=axes)
