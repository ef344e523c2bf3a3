"""Arguments and options shared by every command that loads a model, declared once.

Every such command takes ``MODEL`` as its first positional argument and ``--dtype``,
``--device``, ``--layers-path`` and ``--trust-remote-code``; :class:`ModelChoice` carries them to
:func:`load_model`, which checks the device and the dtype before anything is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .choices import MODELS_LISTED, NULLS_LISTED, OPERATORS_LISTED, POSITIONS_LISTED

if TYPE_CHECKING:
    from ..calibration.shift import ShiftVectors
    from ..interventions.value import Intervention
    from ..models.vlm import VLM

ModelArg = Annotated[
    str,
    typer.Argument(
        help="Hub id (org/name), local directory saved with save_pretrained, or a bundled "
        f"model: {MODELS_LISTED}."
    ),
]
DtypeOpt = Annotated[
    str | None,
    typer.Option("--dtype", help="float32, bfloat16 or float16 (default: the checkpoint's)."),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="cpu, cuda, cuda:N, mps, or auto (CUDA if available, else CPU)."),
]
LayersPathOpt = Annotated[
    str | None,
    typer.Option(
        "--layers-path", help="Explicit decoder-layer path, e.g. model.language_model.layers."
    ),
]
RemoteOpt = Annotated[
    bool, typer.Option("--trust-remote-code", help="Allow code from the model repository.")
]
DeviceMapOpt = Annotated[
    str | None,
    typer.Option(
        "--device-map",
        help="Spread a model over GPUs/CPU/disk: auto, balanced, sequential, or a JSON map.",
    ),
]
MaxMemoryOpt = Annotated[
    str | None,
    typer.Option("--max-memory", help="Per device for --device-map, e.g. 0=20GiB,cpu=64GiB."),
]
OffloadOpt = Annotated[
    str | None,
    typer.Option("--offload-folder", help="Folder for weights --device-map puts on disk."),
]

# The intervention flags of generate, gap and serve (their defaults: tune's recommendation when
# the shift holds one, else the paper's).
ShiftDirOpt = Annotated[
    Path | None,
    typer.Option("--shift", help="Shift directory (from `cmrm calibrate` or `cmrm tune`)."),
]
SampleLevelOpt = Annotated[
    bool, typer.Option("--sample-level", help="Per-input vectors (two extra prefill passes).")
]
AlphaOpt = Annotated[
    float | None,
    typer.Option(
        "--alpha", help="Shift scale; 0 = no change (default: tune's recommendation, else 1)."
    ),
]
OperatorOpt = Annotated[
    str | None,
    typer.Option(
        "--operator",
        help=f"{OPERATORS_LISTED} (default: recommended, else add, the paper's).",
    ),
]
PositionsOpt = Annotated[
    str | None,
    typer.Option("--positions", help=f"{POSITIONS_LISTED} (default: recommended, else all)."),
]
NullOpt = Annotated[
    str | None,
    typer.Option("--null", help=f"Null image of --sample-level: {NULLS_LISTED} (default: blank)."),
]


@dataclass(frozen=True)
class InterventionFlags:
    """The intervention flags of one command line (None: not given)."""

    shift: Path | None = None
    sample_level: bool = False
    alpha: float | None = None
    operator: str | None = None
    positions: str | None = None
    layers: str | None = None
    null: str | None = None

    def build(
        self, *, default_positions: str = "all"
    ) -> tuple[ShiftVectors | None, Intervention | None]:
        """The loaded shift and the intervention (None: the model as it is).

        Raises:
            CmrmError: a flag that would change nothing, or an invalid combination.
        """
        from ..calibration.shift import ShiftVectors
        from ..interventions.build import InterventionOptions, build_intervention

        loaded = ShiftVectors.load(self.shift) if self.shift is not None else None
        intervention = build_intervention(
            InterventionOptions(
                shift=loaded,
                sample_level=self.sample_level,
                alpha=self.alpha,
                operator=self.operator,
                positions=self.positions,
                layers=self.layers,
                null=self.null,
                default_positions=default_positions,
            )
        )
        rec = loaded.meta.recommended if loaded is not None else None
        if (
            rec is not None
            and intervention is not None
            and self.alpha is None
            and self.operator is None
        ):
            _say_applied(self.shift, rec, intervention)
        return loaded, intervention


def _say_applied(shift: Path | None, rec: Any, intervention: Intervention) -> None:
    """Tell the user that ``--shift DIR`` applied ``cmrm tune``'s recommendation (stderr)."""
    iv = intervention
    layers = "all" if iv.layers in (None, "all") else iv.layers
    from ..calibration.shift_file import abstain_message

    abstain = (
        abstain_message(shift, rec, iv.operator, "apply") if isinstance(rec, Mapping) else None
    )
    if abstain is not None:
        typer.echo(abstain, err=True)
        return
    words = (
        f"applying tune's recommendation from {shift}: {iv.operator}, alpha {iv.alpha:g}, "
        f"layers {layers}, positions {iv.positions} (pass --alpha/--operator to override)"
    )
    typer.echo(words, err=True)
    if isinstance(rec, Mapping) and rec.get("feasible") is False:
        typer.echo(
            "warning: this recommendation met NONE of its tune constraints (it is only the "
            "closest setting tried); check tune.json before relying on it",
            err=True,
        )


@dataclass(frozen=True)
class ModelChoice:
    """The model argument and the shared loading options of one command line."""

    model: str
    dtype: str | None = None
    device: str | None = None
    layers_path: str | None = None
    trust_remote_code: bool = False
    device_map: str | None = None
    max_memory: str | None = None
    offload_folder: str | None = None

    def check(self) -> ModelChoice:
        """This choice with ``--device`` resolved for this machine; the dtype checked.

        Raises:
            CmrmError: an unknown dtype or device, or CUDA asked for where there is none.
        """
        from dataclasses import replace

        from ..models.checks import resolve_device
        from ..models.loading import parse_dtype
        from ..models.placement import Placement
        from ..models.source import model_source

        model_source(self.model)  # a typo or a missing folder, before any network request
        parse_dtype(self.dtype)
        Placement.parse(self.device, self.device_map, self.max_memory, self.offload_folder)
        if self.device_map is not None:
            return self  # the map places the model; --device is refused with it
        return replace(self, device=resolve_device(self.device, self.model))


def load_model(choice: ModelChoice) -> VLM:
    """Load the chosen model (call :meth:`ModelChoice.check` first, before other work)."""
    from ..models import load_vlm

    return load_vlm(
        choice.model,
        dtype=choice.dtype,
        device=choice.device,
        layers_path=choice.layers_path,
        trust_remote_code=choice.trust_remote_code,
        device_map=choice.device_map,
        max_memory=choice.max_memory,
        offload_folder=choice.offload_folder,
    )


def only_with(given: dict[str, object], condition: bool, requirement: str) -> None:
    """Refuse flags that would change nothing (a silent no-op) unless ``condition`` holds.

    ``given`` maps flag names to their values; None means "not given".

    Raises:
        ConfigError: naming the flags and what they need.
    """
    from ..base.errors import ConfigError

    flags = [flag for flag, value in given.items() if value is not None]
    if flags and not condition:
        raise ConfigError(
            f"{', '.join(flags)} only appl{'ies' if len(flags) == 1 else 'y'} with "
            f"{requirement}; add it or drop {' and '.join(flags)}"
        )


__all__ = [
    "AlphaOpt",
    "DeviceMapOpt",
    "DeviceOpt",
    "DtypeOpt",
    "InterventionFlags",
    "LayersPathOpt",
    "MaxMemoryOpt",
    "ModelArg",
    "ModelChoice",
    "NullOpt",
    "OffloadOpt",
    "OperatorOpt",
    "PositionsOpt",
    "RemoteOpt",
    "SampleLevelOpt",
    "ShiftDirOpt",
    "load_model",
    "only_with",
]
