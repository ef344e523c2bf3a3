"""Shift vectors: the per-layer directions CMRM adds back, their metadata and their file format.

Sign convention: a shift vector points **from the image-conditioned representation toward the
text-only one** (``v_l = h_l(text) - h_l(null)``), so ``alpha > 0`` moves toward text-only and
``alpha = 0`` is the identity. (The paper's Eq. 6 is printed with the opposite sign.)

On disk a dataset-level shift is a directory with ``shift.safetensors`` (one float32 tensor
``layers.<i>`` per layer) and ``shift.json`` (metadata). Never pickle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..base.atomic import atomic_path, atomic_write
from ..base.errors import IncompatibleShiftError
from .axes import SafetyAxes
from .shift_file import check_meta, check_tensor_shapes

FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    """Versions recorded in every artefact cmrm writes."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("cmrm", "torch", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


@dataclass(frozen=True)
class ShiftMeta:
    """Where a shift came from; everything needed to judge whether it fits a model."""

    source_model: str
    model_type: str
    hidden_size: int
    num_layers: int
    estimator: str = "mean"
    null_image: str = "blank:white"
    contrast: str = "null"
    read_position: str = "last"
    anchor_count: int = 0
    anchor_hash: str = ""
    sequential: bool = False
    """Each layer's vector was measured with the layers before it already steered."""
    calibration: Mapping[str, Any] = field(default_factory=dict)
    """With ``sequential``: the intervention steered while calibrating (alpha, positions, ...)."""
    recommended: Mapping[str, Any] | None = None
    """The setting ``cmrm tune`` recommends (operator, alpha, layers, positions, source); used
    by generate/eval/gap/serve when ``--shift DIR`` comes without ``--alpha``/``--operator``."""
    versions: Mapping[str, str] = field(default_factory=library_versions)
    extra: Mapping[str, Any] = field(default_factory=dict)


def _check_finite(name: str, tensor: Tensor) -> None:
    if not bool(torch.isfinite(tensor).all()):
        raise IncompatibleShiftError(
            f"{name} contains NaN or inf values; recalibrate (check the anchor set and the dtype)"
        )


@dataclass(frozen=True)
class ShiftVectors:
    """Dataset-level shift: one vector per layer (``vectors[i]`` belongs to ``layers[i]``)."""

    layers: tuple[int, ...]
    vectors: Tensor
    meta: ShiftMeta
    axes: SafetyAxes | None = None
    """Safety axes of the same layers (from anchors with harmful and benign kinds), or None."""

    def __post_init__(self) -> None:
        if self.axes is not None and self.axes.layers != self.layers:
            raise IncompatibleShiftError(
                f"safety axes cover layers {list(self.axes.layers)} but the shift "
                f"{list(self.layers)}"
            )
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.layers):
            raise IncompatibleShiftError(
                f"vectors must have shape [n_layers={len(self.layers)}, hidden], "
                f"got {tuple(self.vectors.shape)}"
            )
        if self.vectors.shape[1] != self.meta.hidden_size:
            raise IncompatibleShiftError(
                f"vectors have width {self.vectors.shape[1]} but meta says hidden_size "
                f"{self.meta.hidden_size}"
            )
        if len(set(self.layers)) != len(self.layers) or any(
            not 0 <= layer < self.meta.num_layers for layer in self.layers
        ):
            raise IncompatibleShiftError(
                f"layers {list(self.layers)} must be distinct and in 0..{self.meta.num_layers - 1}"
            )
        _check_finite("shift vectors", self.vectors)

    def vector(self, layer: int) -> Tensor:
        return self.vectors[self.layers.index(layer)]

    def norms(self) -> dict[int, float]:
        return {layer: float(v.norm()) for layer, v in zip(self.layers, self.vectors, strict=True)}

    def with_layers(self, layers: tuple[int, ...]) -> ShiftVectors:
        missing = [layer for layer in layers if layer not in self.layers]
        if missing:
            raise IncompatibleShiftError(
                f"layers {missing} are not in this shift (it has {list(self.layers)}); "
                "recalibrate with those layers or choose among the available ones"
            )
        index = [self.layers.index(layer) for layer in layers]
        axes = self.axes.select(tuple(layers)) if self.axes is not None else None
        return replace(self, layers=tuple(layers), vectors=self.vectors[index], axes=axes)

    def check_compatible(self, model_type: str, hidden_size: int, num_layers: int) -> None:
        """Raise IncompatibleShiftError if the shift was made for a different model shape."""
        meta = self.meta
        problems = []
        if meta.hidden_size != hidden_size:
            problems.append(f"hidden size {meta.hidden_size} vs the model's {hidden_size}")
        if meta.num_layers != num_layers:
            problems.append(f"{meta.num_layers} layers vs the model's {num_layers}")
        if meta.model_type != model_type:
            problems.append(f"family {meta.model_type!r} vs the model's {model_type!r}")
        if problems:
            raise IncompatibleShiftError(
                f"shift calibrated on {meta.source_model!r} does not fit this model: "
                f"{'; '.join(problems)}. Recalibrate it with `cmrm calibrate` on this model"
            )

    def save(self, directory: str | Path) -> Path:
        """Write ``shift.safetensors`` + ``shift.json`` atomically (temp files, then rename)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"layers.{layer}": v.detach().to(torch.float32).cpu().contiguous()
            for layer, v in zip(self.layers, self.vectors, strict=True)
        }
        if self.axes is not None:
            tensors.update(self.axes.tensors())
        header = {
            "format_version": FORMAT_VERSION,
            "layers": list(self.layers),
            **asdict(self.meta),
        }
        header["versions"] = dict(self.meta.versions)
        header["extra"] = dict(self.meta.extra)
        header["calibration"] = dict(self.meta.calibration)
        header["recommended"] = (
            dict(self.meta.recommended) if self.meta.recommended is not None else None
        )
        header["safety_axes"] = self.axes is not None
        with atomic_path(directory / "shift.safetensors") as tmp:
            save_file(tensors, str(tmp))
        atomic_write(directory / "shift.json", json.dumps(header, indent=2, sort_keys=True) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ShiftVectors:
        """Read a directory written by :meth:`save`.

        Raises:
            IncompatibleShiftError: files missing, metadata malformed, tensors inconsistent.
        """
        directory = Path(directory)
        meta_path, tensor_path = directory / "shift.json", directory / "shift.safetensors"
        for path in (meta_path, tensor_path):
            if not path.is_file():
                raise IncompatibleShiftError(
                    f"{path} is missing; a shift directory holds shift.json and "
                    "shift.safetensors (written by `cmrm calibrate`)"
                )
        try:
            header = json.loads(meta_path.read_text(encoding="utf-8"))
            version = header.pop("format_version")
            layers = tuple(int(x) for x in header.pop("layers"))
            has_axes = bool(header.pop("safety_axes", False))
            meta = ShiftMeta(**header)
        except (
            json.JSONDecodeError,
            UnicodeDecodeError,
            AttributeError,
            KeyError,
            TypeError,
            ValueError,
        ) as err:
            raise IncompatibleShiftError(
                f"{meta_path} is not valid shift metadata ({type(err).__name__}: {err}); "
                "restore it or recalibrate with `cmrm calibrate`"
            ) from err
        check_meta(meta_path, meta, layers)
        if version != FORMAT_VERSION:
            raise IncompatibleShiftError(
                f"{meta_path} has format_version {version}; this cmrm reads {FORMAT_VERSION}"
            )
        try:
            tensors = load_file(str(tensor_path))
        except (OSError, ValueError, RuntimeError, SafetensorError) as err:
            raise IncompatibleShiftError(
                f"{tensor_path} cannot be read ({err}); the file is truncated or not a "
                "safetensors file. Recalibrate with `cmrm calibrate` or restore the file"
            ) from err
        expected = {f"layers.{layer}" for layer in layers}
        found = {key for key in tensors if key.startswith("layers.")}
        if found != expected:
            raise IncompatibleShiftError(
                f"{tensor_path} holds {sorted(found)} but shift.json lists {sorted(expected)}"
            )
        check_tensor_shapes(tensor_path, tensors, layers, meta.hidden_size)
        vectors = torch.stack([tensors[f"layers.{layer}"].float() for layer in layers])
        try:
            axes = SafetyAxes.from_tensors(layers, tensors)
            if has_axes and axes is None:
                raise IncompatibleShiftError(
                    f"{meta_path} says the shift has safety axes but the file holds none"
                )
            return cls(layers=layers, vectors=vectors, meta=meta, axes=axes)
        except IncompatibleShiftError as err:
            raise IncompatibleShiftError(f"{tensor_path}: {err}") from err


@dataclass(frozen=True)
class SampleShift:
    """Sample-level shift: one vector per layer per batch row, ``vectors[i, b]`` for ``layers[i]``."""

    layers: tuple[int, ...]
    vectors: Tensor

    def __post_init__(self) -> None:
        if self.vectors.ndim != 3 or self.vectors.shape[0] != len(self.layers):
            raise IncompatibleShiftError(
                f"sample shift must have shape [n_layers={len(self.layers)}, batch, hidden], "
                f"got {tuple(self.vectors.shape)}"
            )
        _check_finite("sample shift", self.vectors)

    @property
    def batch_size(self) -> int:
        return int(self.vectors.shape[1])
