"""``run_gap``: capture every variant of every query through the model and write the analysis.

For each batch of items the variants are, all read at the last prompt token of each layer:

- ``text``: the prompt alone (same chat template, no image placeholder);
- ``image``: the prompt with the item's image (items without an image skip this variant);
- ``null:<spec>``: the prompt with each null image, the size of the item's image;
- ``caption``: the prompt with the item's caption prepended in place of the image (items with a
  caption only);
- ``image+cmrm``: with an intervention, the image variant again under it
  (:func:`cmrm.interventions.intervene`: dataset- or sample-level, any operator).

The text-only states of a batch are always captured first, so every other variant pairs with them
(see :class:`~cmrm.analysis.accumulator.GapAccumulator`). Outputs in ``out_dir``: ``metrics.json``,
``figures/pca.png``, ``figures/layers.png`` and ``summary.md``, each written atomically.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..base.atomic import atomic_write
from ..base.errors import CmrmError
from ..data.images import NullImage, load_image
from ..data.items import Item
from .accumulator import TEXT, GapAccumulator
from .plots import plot_layers, plot_pca
from .results import GapReport
from .summary import FIGURES, summary_markdown

if TYPE_CHECKING:
    from ..interventions.value import Intervention
    from ..models.vlm import VLM

logger = logging.getLogger(__name__)

IMAGE, CAPTION, STEERED = "image", "caption", "image+cmrm"


def null_variant(null: NullImage) -> str:
    """The variant name of a null image, e.g. ``null:blank:white``."""
    return f"null:{null.spec}"


def caption_prompt(item: Item) -> str:
    """The prompt with the caption in place of the image (the caption first, as the image was)."""
    return f"{item.caption}\n{item.prompt}"


def _check(items: Sequence[Item], nulls: Sequence[NullImage], batch_size: int) -> None:
    if not items:
        raise CmrmError("no items to analyse; pass a benchmark or JSONL file with some rows")
    if batch_size < 1:
        raise CmrmError(f"batch size must be at least 1, got {batch_size}")
    specs = [null.spec for null in nulls]
    if len(set(specs)) != len(specs):
        raise CmrmError(f"null images repeat: {specs}; give each at most once")


def _pca_layers(report: GapReport, kept: Sequence[int]) -> list[int]:
    """The report's plot layers that have samples, else up to four evenly spaced kept layers."""
    chosen = [layer for layer in report.plot_layers if layer in kept]
    return chosen or list(kept[:: max(1, len(kept) // 4)])[:4]


def write_outputs(report: GapReport, acc: GapAccumulator, out_dir: Path) -> dict[str, Path]:
    """Write ``metrics.json``, the figures (when samples were kept) and ``summary.md``."""
    out_dir = Path(out_dir)
    written = {}
    text = json.dumps(report.to_json(), indent=2, allow_nan=False, default=str) + "\n"
    written["metrics"] = atomic_write(out_dir / "metrics.json", text)
    figures: dict[str, str] = {}
    if acc.max_samples > 0 and acc.sample_layers:
        layers = _pca_layers(report, acc.sample_layers)
        samples = {layer: {v: acc.samples(v, layer)[1] for v in acc.variants} for layer in layers}
        written["pca"] = plot_pca(report, samples, out_dir / FIGURES["pca"], layers=layers)
        figures["pca"] = FIGURES["pca"]
    written["layers"] = plot_layers(report, out_dir / FIGURES["layers"])
    figures["layers"] = FIGURES["layers"]
    summary = summary_markdown(report, figures=figures)
    written["summary"] = atomic_write(out_dir / "summary.md", summary)
    return written


def _capture(
    vlm: VLM, prompts: list[str], images: list[Image.Image | None], layers: tuple[int, ...]
) -> Any:
    from ..calibration.capture import capture_states

    return capture_states(vlm, prompts, images, layers=layers, read="last")


def run_gap(
    vlm: VLM,
    items: Sequence[Item],
    *,
    out_dir: str | Path,
    layers: str | int | Sequence[int] | None = None,
    nulls: Sequence[NullImage] = (NullImage(),),
    intervention: Intervention | None = None,
    batch_size: int = 8,
    show_progress: bool = False,
    max_samples: int = 256,
    sample_layers: Sequence[int] | None = None,
    seed: int = 0,
    meta: Mapping[str, Any] | None = None,
) -> GapReport:
    """Measure the representation gap of ``vlm`` on ``items`` and write it to ``out_dir``.

    Args:
        layers: decoder layers to analyse (default every layer; ``"8:16"``, ``[0, 5]``, ...).
        nulls: null images whose variants are measured too (may be empty).
        intervention: the image variant is measured again under it (its own layers are
            steered, not only the analysed ones).
        max_samples / sample_layers / seed: the bounded sample kept for the probe and the scatter
            (see :class:`GapAccumulator`); ``max_samples=0`` skips both.
        meta: recorded in ``metrics.json`` (the CLI passes the data spec here).

    Raises:
        CmrmError: no items, bad batch size, repeated null images, bad layers, shift errors.
        DataError: an image is missing or cannot be decoded (the message names it).
    """
    _check(items, nulls, batch_size)
    spec = layers if layers is None or isinstance(layers, str | int) else list(layers)
    chosen = vlm.layers.resolve(spec)
    acc = GapAccumulator(chosen, max_samples=max_samples, sample_layers=sample_layers, seed=seed)
    has_images = any(item.has_image for item in items)
    if not has_images and not nulls:
        raise CmrmError("no item has an image and no null image was given: nothing to compare")
    if intervention is not None and intervention.shift is not None:
        # fail before any forward pass, not at the first steered batch
        intervention.shift.check_compatible(vlm.model_type, vlm.hidden_size, vlm.num_layers)
    base = IMAGE if has_images else null_variant(nulls[0])
    variants = 2 + len(nulls) + (intervention is not None) + any(i.caption for i in items)
    estimate = variants * len(acc.sample_layers) * max_samples * vlm.hidden_size * 2
    logger.info(
        "gap: %d items, %d layers, up to %.0f MiB of kept samples",
        len(items),
        len(chosen),
        estimate / 2**20,
    )
    starts = range(0, len(items), batch_size)
    for start in tqdm(starts, desc="gap", unit="batch", disable=not show_progress):
        chunk = items[start : start + batch_size]
        _analyse_batch(vlm, acc, chunk, start, chosen, nulls, base, intervention)
    info: dict[str, Any] = {
        "model": vlm.model_id,
        "items": len(items),
        "layers": list(chosen),
        "nulls": [null.spec for null in nulls],
        "read_position": "last",
        "max_samples": max_samples,
        "seed": seed,
        **(dict(meta or {})),
    }
    if intervention is not None:
        info.update(
            alpha=float(intervention.alpha),
            positions=intervention.positions,
            intervention=intervention.describe(),
        )
        if intervention.shift is not None:
            info["shift"] = _shift_info(intervention.shift)
    steered = STEERED if STEERED in acc.variants else None
    report = acc.report(primary=base, steered=steered, meta=info)
    write_outputs(report, acc, Path(out_dir))
    return report


def _shift_info(shift: Any) -> dict[str, Any]:
    m = shift.meta
    return {
        "source_model": m.source_model,
        "estimator": m.estimator,
        "null_image": m.null_image,
        "contrast": m.contrast,
        "anchor_count": m.anchor_count,
        "anchor_hash": m.anchor_hash,
        "layers": list(shift.layers),
    }


def _analyse_batch(
    vlm: VLM,
    acc: GapAccumulator,
    chunk: Sequence[Item],
    start: int,
    layers: tuple[int, ...],
    nulls: Sequence[NullImage],
    base: str,
    intervention: Intervention | None,
) -> None:
    ids = np.arange(start, start + len(chunk))
    prompts = [item.prompt for item in chunk]
    images = [load_image(item.image) for item in chunk]
    acc.add(TEXT, _capture(vlm, prompts, [None] * len(chunk), layers), ids=ids)
    rows = [i for i, img in enumerate(images) if img is not None]
    base_inputs: tuple[list[str], list[Image.Image | None], list[int]] | None = None
    if rows:
        inputs = ([prompts[i] for i in rows], [images[i] for i in rows], rows)
        acc.add(IMAGE, _capture(vlm, inputs[0], inputs[1], layers), ids=ids[rows])
        base_inputs = inputs if base == IMAGE else None
    for null in nulls:
        null_images: list[Image.Image | None] = [null.like(img, vlm.image_mean) for img in images]
        acc.add(null_variant(null), _capture(vlm, prompts, null_images, layers), ids=ids)
        if base == null_variant(null):
            base_inputs = (prompts, null_images, list(range(len(chunk))))
    captioned = [i for i, item in enumerate(chunk) if item.caption]
    if captioned:
        texts = [caption_prompt(chunk[i]) for i in captioned]
        states = _capture(vlm, texts, [None] * len(captioned), layers)
        acc.add(CAPTION, states, ids=ids[captioned])
    if intervention is not None and base_inputs is not None:
        from ..interventions.apply import intervene

        with intervene(vlm, intervention, base_inputs[0], base_inputs[1]):
            states = _capture(vlm, base_inputs[0], base_inputs[1], layers)
        acc.add(STEERED, states, ids=ids[base_inputs[2]])
