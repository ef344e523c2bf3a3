"""Sequential calibration: each layer's vector measured with the earlier layers already steered.

An independent estimate measures every layer's shift on *unsteered* inputs. Applied at every
layer, the shifts then compound: once layer 0 is steered, layer 1's input has moved already and
its vector overshoots, and so on (on the organism the steered states ended up *further* from
text-only than before). Here, for each chosen layer ``l`` in order,

    v_l = mean_i [ h_l(text_i) - h_l(contrast_i | layers < l steered with v at alpha) ]

so that at the calibration alpha (``add``, the calibration positions) the mean steered
read-position state equals the mean text-only state at *every* layer — by construction for
``mean``. Text-only rows are never steered, so their states come from the one unsteered pass.
The cost is one pass per layer over the anchors (each pass stops after the layer it reads).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .capture import ReadPosition, capture_batch
from .contrast import contrast_images, pc1_vector
from .distributed import SINGLE, World
from .images import NullImage, load_image
from .items import Item
from .models.vlm import VLM
from .reduction import Partial, reduce_partial, shard_batches
from .shift import ShiftMeta, ShiftVectors

logger = logging.getLogger(__name__)


def _partial(vlm: VLM, layers: tuple[int, ...], vectors: list[Tensor]) -> ShiftVectors:
    meta = ShiftMeta(
        source_model=vlm.model_id,
        model_type=vlm.model_type,
        hidden_size=vlm.hidden_size,
        num_layers=vlm.num_layers,
    )
    return ShiftVectors(layers=layers, vectors=torch.stack(vectors), meta=meta)


def sequential_vectors(
    vlm: VLM,
    items: Sequence[Item],
    text: Tensor,
    *,
    layers: tuple[int, ...],
    null: NullImage,
    contrast: str,
    estimator: str,
    read: ReadPosition,
    alpha: float,
    positions: str,
    batch_size: int,
    show_progress: bool = False,
    world: World = SINGLE,
) -> Tensor:
    """The sequentially calibrated vectors ``[n_layers, hidden]`` (float32).

    Args:
        text: the text-only states: ``[n_layers, 1, hidden]`` means for ``mean``, or
            ``[n_layers, N, hidden]`` per anchor (in anchor order) for ``pc1``.
        world: several ranks share the anchors' batches, as in :func:`cmrm.estimate.calibrate`;
            each layer's partial is reduced across ranks before the next layer is measured.
    """
    from .interventions.steering import steer

    order = sorted(range(len(layers)), key=lambda i: layers[i])
    done_layers: list[int] = []
    done: list[Tensor] = []
    out = torch.zeros(len(layers), vlm.hidden_size)
    steps = tqdm(order, desc="sequential calibration", disable=not show_progress, unit="layer")
    for i in steps:
        layer = layers[i]
        part = Partial.empty(1, vlm.hidden_size, keep=estimator == "pc1")
        partial = _partial(vlm, tuple(done_layers), done) if done else None
        for start in shard_batches(len(items), batch_size, world):
            chunk = items[start : start + batch_size]
            images = contrast_images(
                vlm,
                [load_image(item.image) for item in chunk],
                null,
                contrast,  # type: ignore[arg-type]
            )
            batch = vlm.encode([item.prompt for item in chunk], images)
            steering = (
                steer(vlm, partial, alpha=alpha, positions=positions)
                if partial is not None
                else contextlib.nullcontext()
            )
            with steering:
                state = capture_batch(vlm, batch, layers=[layer], read=read, stop_early=True)
            part = part.add(start, state)
        part = reduce_partial(part, world)
        if estimator == "mean":
            vector = (text[i, 0].double() - part.total[0] / max(part.count, 1)).float()
        else:
            vector = pc1_vector(text[i] - part.ordered_rows()[0])
        out[i] = vector
        done_layers.append(layer)
        done.append(vector)
    logger.info("sequential calibration over %d layers", len(layers))
    return out
