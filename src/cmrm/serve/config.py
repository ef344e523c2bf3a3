"""What the operator of ``cmrm serve`` decides: the served intervention, the policy for per-request
overrides, where images may come from, and the limits that keep the server up."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import CmrmError
from ..calibration.shift import ShiftVectors
from ..data.images import NullImage
from ..models.positions import check_positions

MAX_IMAGES = 1
"""Images per request: cmrm encodes one image per prompt (and computes a sample-level shift from
it), so a request with more is refused rather than silently truncated."""


@dataclass(frozen=True)
class ServedIntervention:
    """The server's own intervention, applied to every request unless the policy allows otherwise."""

    method: str = "none"
    """``none``, ``dataset`` (needs ``shift``) or ``sample``."""
    alpha: float = 1.0
    operator: str = "add"
    positions: str = "all"
    layers: str | tuple[int, ...] | None = None
    shift: ShiftVectors | None = field(default=None, repr=False)
    null: NullImage = field(default_factory=NullImage)

    def __post_init__(self) -> None:
        if self.method not in ("none", "dataset", "sample"):
            raise CmrmError(
                f"the served method must be none, dataset or sample, got {self.method!r}"
            )
        if self.method == "dataset" and self.shift is None:
            raise CmrmError("method 'dataset' needs a shift: start the server with --shift DIR")
        if not math.isfinite(self.alpha):
            raise CmrmError(f"alpha must be a finite number, got {self.alpha!r}")
        check_positions(self.positions)


@dataclass(frozen=True)
class OverridePolicy:
    """Whether a request may choose its own intervention (``extra_body={"cmrm": {...}}``)."""

    allow: bool = False
    """Off: the server's intervention is always applied, and a request asking for another one is
    refused with 403 (never silently ignored)."""
    max_alpha: float = 4.0
    """Largest ``|alpha|`` a request may ask for."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_alpha) and self.max_alpha >= 0):
            raise CmrmError(f"max alpha must be a finite number >= 0, got {self.max_alpha!r}")


@dataclass(frozen=True)
class ImagePolicy:
    """Where ``image_url`` parts may point. ``data:`` URLs (base64) are always accepted."""

    local_root: Path | None = None
    """Local paths (``/abs/path`` or ``file://``) are read only inside this folder; None: refused."""
    remote: bool = False
    """Fetch ``http(s)://`` URLs (off by default: the server would reach wherever a client says)."""
    max_pixels: int = 40_000_000
    fetch_timeout_s: float = 10.0


@dataclass(frozen=True)
class Limits:
    """Limits that keep one client from taking the server down."""

    max_body_bytes: int = 20 * 1024 * 1024
    max_new_tokens: int = 512
    """Largest ``max_tokens`` a request may ask for; also the default when it asks for none."""
    max_queue: int = 64
    """Requests waiting for the model; one more gets 429."""
    max_batch: int = 8
    """Requests generated together in one batch."""
    batch_wait_s: float = 0.02
    """The worker starts a batch once no request has arrived (nor a batch ended) for this long
    and none is still being read and checked."""
    batch_wait_max_s: float = 0.25
    """... and at the latest this long after the oldest request in the queue was taken up."""
    request_timeout_s: float = 300.0
    """A request not finished by then gets 504 (and its row stops generating)."""

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_new_tokens", "max_queue", "max_batch"):
            if getattr(self, name) < 1:
                raise CmrmError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.request_timeout_s > 0 or not 0 <= self.batch_wait_s <= self.batch_wait_max_s:
            raise CmrmError(
                f"request timeout must be positive and 0 <= batch wait <= batch wait max, got "
                f"{self.request_timeout_s}, {self.batch_wait_s} and {self.batch_wait_max_s}"
            )


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``create_app`` needs besides the model."""

    model_name: str
    """The name clients pass as ``model``; any other name gets 404."""
    intervention: ServedIntervention = field(default_factory=ServedIntervention)
    policy: OverridePolicy = field(default_factory=OverridePolicy)
    images: ImagePolicy = field(default_factory=ImagePolicy)
    limits: Limits = field(default_factory=Limits)
