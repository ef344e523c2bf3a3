"""Image loading (decoded by content, never by file extension) and the null images of CMRM.

A *null image* is a meaningless image put where the real one was, so that the difference between
the text-only and the null-image hidden states measures what "having an image" does to the model,
independent of the image's content (the paper's contrast). Specs, as strings on the CLI:

- ``blank`` / ``blank:<colour>``: a solid colour (default white; any PIL colour name or ``#rrggbb``);
- ``noise`` / ``noise:gaussian|uniform`` / ``noise:<dist>:<seed>``: seeded random pixels;
- ``mean``: every pixel set to a per-channel mean (default: the image processor's ``image_mean``,
  i.e. the mean of the data the vision encoder was normalised with).

A null image has the size of the image it replaces (or ``default_size`` when there is none).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageColor, UnidentifiedImageError

from ..base.errors import DataError

ImageRef = Path | Image.Image | None
"""A path to an image file, an image already in memory (the organism's), or no image."""

NullKind = Literal["blank", "noise", "mean"]
NULL_SPECS: tuple[str, ...] = ("blank[:colour]", "noise[:gaussian|uniform][:seed]", "mean")
"""The null image specs :meth:`NullImage.parse` accepts (one per kind), as ``--help`` lists them."""
DEFAULT_SIZE = (336, 336)


def load_image(ref: ImageRef) -> Image.Image | None:
    """Open an image reference as RGB, decoding by content (a WebP named .png still opens).

    Raises:
        DataError: the file does not exist or cannot be decoded; the message names the file.
    """
    if ref is None:
        return None
    if isinstance(ref, Image.Image):
        return ref.convert("RGB")
    path = Path(ref)
    if not path.is_file():
        what = "is a folder, not an image file" if path.is_dir() else "does not exist"
        raise DataError(f"image {path} {what}; check the data file's image paths")
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"image {path} cannot be decoded ({err}); replace or remove it") from err


_SUFFIXES = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tiff",
    "MPO": ".jpg",
}


def export_image(ref: Path | Image.Image, folder: Path) -> Path:
    """Write an image into ``folder`` named by the SHA-256 of its bytes; returns its path.

    A file is copied byte for byte, with the extension of its decoded format (so a WebP named
    ``.png`` is written as ``.webp``); an in-memory image is saved as PNG (lossless). Writing
    the same image twice writes one file.

    Raises:
        DataError: the file does not exist or is not an image PIL can decode.
    """
    from ..base.atomic import atomic_write

    if isinstance(ref, Image.Image):
        buffer = io.BytesIO()
        ref.save(buffer, format="PNG")
        data, suffix = buffer.getvalue(), ".png"
    else:
        path = Path(ref)
        if not path.is_file():
            raise DataError(f"image {path} does not exist; check the data file's image paths")
        data = path.read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as img:
                kind = img.format or ""
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise DataError(
                f"image {path} cannot be decoded ({err}); replace or remove it"
            ) from err
        suffix = _SUFFIXES.get(kind, path.suffix.lower() or ".img")
    target = folder / f"{hashlib.sha256(data).hexdigest()[:32]}{suffix}"
    if not target.is_file() or target.stat().st_size != len(data):
        atomic_write(target, data)
    return target


@dataclass(frozen=True)
class NullImage:
    """A meaningless stand-in image; see the module docstring for the spec strings."""

    kind: NullKind = "blank"
    colour: str = "white"
    distribution: Literal["gaussian", "uniform"] = "gaussian"
    seed: int = 0
    mean: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("blank", "noise", "mean"):
            raise DataError(f"null image kind must be blank, noise or mean, got {self.kind!r}")
        if self.kind == "blank":
            try:
                ImageColor.getrgb(self.colour)
            except ValueError as err:
                raise DataError(
                    f"unknown colour {self.colour!r} for a blank null image; "
                    "use a name like 'white' or a hex code like '#808080'"
                ) from err
        if self.distribution not in ("gaussian", "uniform"):
            raise DataError(
                f"noise distribution must be gaussian or uniform, got {self.distribution!r}"
            )

    @classmethod
    def parse(cls, spec: str) -> NullImage:
        """Parse ``blank[:colour]``, ``noise[:gaussian|uniform][:seed]`` or ``mean``."""
        parts = spec.strip().split(":")
        kind, rest = parts[0].lower(), parts[1:]
        if kind == "blank" and len(rest) <= 1:
            return cls("blank", colour=rest[0] if rest else "white")
        if kind == "noise" and len(rest) <= 2:
            dist = rest[0].lower() if rest and rest[0] else "gaussian"
            if dist.isdigit() and len(rest) == 1:
                return cls("noise", seed=int(dist))
            seed_text = rest[1] if len(rest) == 2 else "0"
            if not seed_text.isdigit():
                raise DataError(f"noise seed must be a whole number, got {seed_text!r} in {spec!r}")
            return cls("noise", distribution=dist, seed=int(seed_text))  # type: ignore[arg-type]
        if kind == "mean" and not rest:
            return cls("mean")
        raise DataError(
            f"cannot parse null image {spec!r}; expected {', '.join(NULL_SPECS[:-1])} or "
            f"{NULL_SPECS[-1]}"
        )

    @property
    def spec(self) -> str:
        """The canonical spec string, recorded in shift metadata and run configs."""
        if self.kind == "blank":
            return f"blank:{self.colour}"
        if self.kind == "noise":
            return f"noise:{self.distribution}:{self.seed}"
        return "mean" if self.mean is None else "mean:" + ",".join(f"{m:.4f}" for m in self.mean)

    def render(
        self,
        size: tuple[int, int] = DEFAULT_SIZE,
        image_mean: Sequence[float] | None = None,
    ) -> Image.Image:
        """Draw the null image at ``size`` (width, height)."""
        width, height = size
        if self.kind == "blank":
            return Image.new("RGB", size, ImageColor.getrgb(self.colour))
        if self.kind == "mean":
            mean = self.mean or tuple(image_mean or (0.5, 0.5, 0.5))
            pixel = tuple(round(255 * float(m)) for m in mean[:3])
            return Image.new("RGB", size, pixel)
        rng = np.random.default_rng(self.seed)
        if self.distribution == "gaussian":
            arr = rng.normal(127.5, 64.0, size=(height, width, 3))
        else:
            arr = rng.uniform(0.0, 255.0, size=(height, width, 3))
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")

    def like(
        self, image: Image.Image | None, image_mean: Sequence[float] | None = None
    ) -> Image.Image:
        """A null image the size of ``image`` (or the default size when there is none)."""
        size = image.size if image is not None else DEFAULT_SIZE
        return self.render(size, image_mean)
