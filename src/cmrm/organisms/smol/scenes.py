"""Synthetic scenes at the vision tower's resolution (224 px), seeded, from disjoint streams.

A :class:`Scene` is one coloured, patterned shape (plain, striped, dotted or checkered) on a
slightly shaded background with pixel noise. Questions ask for the shape's colour or the
background colour. (Questions about the shape's kind or pattern were dropped: the small tower,
pre-trained for a few CPU-minutes, recognised them at 55-70 % only, see docs/organism-smol.md;
shapes and patterns stay in the pictures for variety.)
Scenes are drawn from named streams (``vision`` for tower pre-training, ``train`` for the
projector, ``anchor``, ``val`` and ``eval`` for the suites); each stream has its own random
generator and every scene carries a distinct pixel seed, so no two streams share a picture (the
tests check it). Questions about a scene have exact one-word answers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 224

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "triangle", "star", "cross")
PATTERNS = ("plain", "striped", "dotted", "checkered")
BACKGROUNDS = ("white", "gray", "black")
STREAMS = ("vision", "train", "anchor", "val", "eval")

_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 50),
    "blue": (45, 70, 225),
    "yellow": (235, 210, 35),
    "purple": (135, 45, 170),
    "orange": (245, 135, 25),
    "white": (240, 240, 240),
    "gray": (125, 125, 125),
    "black": (20, 20, 20),
}

QUESTIONS: dict[str, tuple[str, ...]] = {
    "colour": (
        "What colour is the shape in the image?",
        "What is the colour of the shape?",
        "Which colour does the shape in this picture have?",
        "Tell me the colour of the shape.",
    ),
    "background": (
        "What colour is the background of the image?",
        "What is the background colour?",
        "Which colour is the background in this picture?",
    ),
}
CAPTION_QUESTIONS = (
    "Describe the image.",
    "What do you see in this picture?",
    "Give a short caption for this image.",
    "What does the image show?",
)
VOCABULARY: dict[str, tuple[str, ...]] = {
    "colour": COLOURS,
    "background": BACKGROUNDS,
}
"""Per question type, the words an answer is matched against (the first one mentioned counts)."""


@dataclass(frozen=True)
class Scene:
    """What an image shows, plus the seed that fixes its pixels."""

    colour: str
    shape: str
    pattern: str
    background: str
    seed: int

    def value(self, topic: str) -> str:
        """The exact answer to a ``colour``, ``pattern`` or ``background`` question (the suites ask
        about colour and background)."""
        return {"colour": self.colour, "pattern": self.pattern, "background": self.background}[
            topic
        ]

    def answer(self, topic: str) -> str:
        """The trained answer sentence to a question of ``topic``."""
        if topic == "colour":
            return f"The shape is {self.colour}."
        if topic == "pattern":
            return f"It is {self.pattern}."
        return f"The background is {self.background}."

    def caption(self) -> str:
        return f"A {self.colour} shape on a {self.background} background."

    def render(self) -> Image.Image:
        """Draw the scene as a 224x224 RGB image (deterministic in ``seed``)."""
        return self.render_with_mask()[0]

    def render_with_mask(self) -> tuple[Image.Image, Image.Image]:
        """The image and a same-size ``L`` mask of the shape (255 inside), for pre-training."""
        rng = np.random.default_rng(self.seed)
        size = IMAGE_SIZE
        top = np.array(_tint(self.background, rng), dtype=np.float32)
        bottom = np.clip(top + rng.uniform(-30, 30, 3), 0, 255)
        ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
        canvas = (top * (1 - ramp) + bottom * ramp) * np.ones((1, size, 3), np.float32)
        img = Image.fromarray(canvas.astype(np.uint8), "RGB")
        mask = Image.new("L", (size, size), 0)
        half = int(rng.integers(40, 80))
        cx = int(rng.integers(half + 4, size - half - 4))
        cy = int(rng.integers(half + 4, size - half - 4))
        fill = _tint(self.colour, rng)
        turn = float(rng.uniform(0, np.pi))
        _draw(ImageDraw.Draw(img), self.shape, cx, cy, half, fill, turn)
        _draw(ImageDraw.Draw(mask), self.shape, cx, cy, half, 255, turn)
        marks = _pattern(self.pattern, size, rng) & (np.asarray(mask) > 0)
        arr = np.asarray(img, dtype=np.int16)
        arr[marks] = (arr[marks] * 0.45).astype(np.int16)
        arr = arr + rng.integers(-10, 11, (size, size, 3))
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB"), mask


def _draw(
    draw: ImageDraw.ImageDraw,
    shape: str,
    cx: int,
    cy: int,
    half: int,
    fill: tuple[int, int, int] | int,
    turn: float,
) -> None:
    box = (cx - half, cy - half, cx + half, cy + half)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill)
    elif shape == "star":
        points = []
        for k in range(10):
            radius = half if k % 2 == 0 else half * 0.42
            angle = turn + k * np.pi / 5
            points.append((cx + radius * np.sin(angle), cy - radius * np.cos(angle)))
        draw.polygon(points, fill)
    else:  # cross
        bar = max(6, half // 3)
        draw.rectangle((cx - half, cy - bar, cx + half, cy + bar), fill=fill)
        draw.rectangle((cx - bar, cy - half, cx + bar, cy + half), fill=fill)


def _pattern(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean ``[size, size]`` marks of a pattern (random phase; stripes random orientation)."""
    y, x = np.mgrid[0:size, 0:size]
    y, x = y + int(rng.integers(0, 24)), x + int(rng.integers(0, 24))
    if name == "striped":
        along = y if int(rng.integers(2)) else x
        return np.asarray((along // 9) % 2 == 0)
    if name == "dotted":
        return np.asarray(((y % 18) - 9) ** 2 + ((x % 18) - 9) ** 2 <= 16)
    if name == "checkered":
        return np.asarray(((y // 12) + (x // 12)) % 2 == 0)
    return np.zeros((size, size), dtype=bool)


def _tint(name: str, rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in _RGB[name])
    return (r, g, b)


def _stream_base(stream: str, seed: int) -> int:
    return zlib.crc32(f"organism-smol/{stream}".encode()) ^ (seed * 0x9E3779B1 & 0xFFFFFFFF)


def scenes(stream: str, n: int, *, seed: int = 0) -> list[Scene]:
    """``n`` scenes from the named stream; the same arguments give the same scenes.

    Colour, shape and background are uniform; pixel seeds are ``base * 1_000_003 + i`` with a
    per-stream ``base``, so two streams never share a pixel seed for realistic ``n``.
    """
    if stream not in STREAMS:
        raise ValueError(f"unknown scene stream {stream!r}; expected one of {STREAMS}")
    base = _stream_base(stream, seed)
    rng = np.random.default_rng(base)
    out = []
    for i in range(n):
        out.append(
            Scene(
                colour=COLOURS[int(rng.integers(len(COLOURS)))],
                shape=SHAPES[int(rng.integers(len(SHAPES)))],
                pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
                background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
                seed=int(base) * 1_000_003 + i,
            )
        )
    return out
