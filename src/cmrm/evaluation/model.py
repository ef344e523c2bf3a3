"""The model of an evaluation run: loaded on first use, checked against the run once, and the
method of each cell built from the run's configuration."""

from __future__ import annotations

import gc
import logging
from typing import Any

from ..calibration.shift import ShiftVectors
from ..data.images import NullImage
from ..generation.baselines import Baseline
from ..generation.methods import Method
from ..interventions.value import Intervention
from ..models.checks import check_items_fit
from ..models.vlm import VLM
from .config import Cell, EvalConfig
from .preflight import Prepared

logger = logging.getLogger(__name__)


def method_for(config: EvalConfig, cell: Cell, shift: ShiftVectors | None) -> Method:
    """The method of one cell: a :class:`Baseline`, or an :class:`Intervention` built from the
    run's positions, layers, null image and contrast."""
    if cell.alpha is None:
        return Baseline(
            cell.method,  # type: ignore[arg-type]  # validated by EvalConfig
            dict(config.method_options.get(cell.method, {})),
        )
    return Intervention(
        source=cell.method,  # type: ignore[arg-type]  # validated by EvalConfig
        operator=cell.operator,
        alpha=cell.alpha,
        positions=config.positions,  # type: ignore[arg-type]
        layers=config.layers,
        shift=shift,
        null=NullImage.parse(config.null),
        contrast=config.contrast,  # type: ignore[arg-type]
    )


class RunModel:
    """The VLM, loaded on first use (a run with every row done never loads it), and checked
    against the run once: layer spec, given shift, prompt lengths."""

    def __init__(self, config: EvalConfig, vlm: Any, prepared: Prepared) -> None:
        self.config, self.vlm, self.prepared = config, vlm, prepared
        self.owned = self.checked = False

    def get(self) -> Any:
        if self.vlm is None:
            from ..models import load_vlm

            logger.info("loading %s", self.config.model)
            self.vlm = load_vlm(
                self.config.model,
                dtype=self.config.dtype,
                device=self.prepared.device,
                layers_path=self.config.layers_path,
                trust_remote_code=self.config.trust_remote_code,
                device_map=self.config.device_map,
                max_memory=self.config.max_memory,
                offload_folder=self.config.offload_folder,
            )
            self.owned = True
        if not self.checked:
            self._check(self.vlm)
            self.checked = True
        return self.vlm

    def _check(self, vlm: Any) -> None:
        if not isinstance(vlm, VLM):  # an injected stand-in: nothing to check it against
            return
        if self.config.layers is not None:
            vlm.layers.resolve(self.config.layers)
        shift = self.prepared.shift
        if shift is not None:
            shift.check_compatible(vlm.model_type, vlm.hidden_size, vlm.num_layers)
        for bench, items in self.prepared.items.items():
            check_items_fit(vlm, items, f"benchmark {bench!r}")
        check_items_fit(vlm, self.prepared.anchors, f"anchor set {self.config.anchors!r}")

    def release(self) -> None:
        if self.owned:
            self.vlm = None
            gc.collect()
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
