"""Synthetic images: one coloured shape on a plain background, rendered with PIL, seeded.

A :class:`Scene` is drawn from a seed stream named by its split (``train``, ``anchor``, ``eval``,
``vision``), so the images of different splits come from different random streams; position, size,
colour tint and pixel noise are random, so no two scenes are the same picture.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .grammar import BACKGROUNDS, COLOURS, SCENE, SHAPES

IMAGE_SIZE = 32

_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (40, 60, 230),
    "yellow": (235, 215, 30),
    "purple": (140, 40, 170),
    "orange": (245, 135, 20),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "black": (15, 15, 15),
}


@dataclass(frozen=True)
class Scene:
    """What an image shows, plus the seed that fixes its pixels."""

    colour: str
    shape: str
    background: str
    seed: int

    def describe(self) -> str:
        """The scene in words, as the model reads it in stage 1."""
        return SCENE.format(colour=self.colour, shape=self.shape, background=self.background)

    def render(self) -> Image.Image:
        """Draw the scene as a 32x32 RGB image (deterministic in ``seed``)."""
        rng = np.random.default_rng(self.seed)
        img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), _tint(self.background, rng))
        draw = ImageDraw.Draw(img)
        half = int(rng.integers(7, 12))
        cx = int(rng.integers(half + 1, IMAGE_SIZE - half - 1))
        cy = int(rng.integers(half + 1, IMAGE_SIZE - half - 1))
        fill = _tint(self.colour, rng)
        box = (cx - half, cy - half, cx + half, cy + half)
        if self.shape == "circle":
            draw.ellipse(box, fill=fill)
        elif self.shape == "square":
            draw.rectangle(box, fill=fill)
        elif self.shape == "triangle":
            draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill)
        else:  # cross
            bar = max(2, half // 3)
            draw.rectangle((cx - half, cy - bar, cx + half, cy + bar), fill=fill)
            draw.rectangle((cx - bar, cy - half, cx + bar, cy + half), fill=fill)
        arr = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, (IMAGE_SIZE, IMAGE_SIZE, 3))
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _tint(name: str, rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in _RGB[name])
    return (r, g, b)


def scenes(stream: str, n: int, *, seed: int = 0) -> list[Scene]:
    """``n`` scenes from the named seed stream; the same arguments give the same scenes.

    Colour, shape and background are drawn uniformly; a shape never has the background's colour
    (the palettes do not overlap).
    """
    base = zlib.crc32(stream.encode()) ^ (seed * 0x9E3779B1 & 0xFFFFFFFF)
    rng = np.random.default_rng(base)
    out = []
    for i in range(n):
        out.append(
            Scene(
                colour=COLOURS[int(rng.integers(len(COLOURS)))],
                shape=SHAPES[int(rng.integers(len(SHAPES)))],
                background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
                seed=int(base) * 1_000_003 + i,
            )
        )
    return out


def blank_image() -> Image.Image:
    """A white image of the organism's size (the ``harmful-blank`` suite's image)."""
    return Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
