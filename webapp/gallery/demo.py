"""A labelled demo gallery drawn locally (no downloads): a dozen visually distinct classes."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZE = 192
Colour = tuple[int, int, int]


def _jitter(rng: random.Random, colour: Colour, amount: int = 30) -> Colour:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in colour)  # type: ignore[return-value]


def _canvas(rng: random.Random, colour: Colour) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (SIZE, SIZE), _jitter(rng, colour, 20))
    return image, ImageDraw.Draw(image)


def _polygon(cx: float, cy: float, radius: float, sides: int, turn: float, inner: float = 1.0) -> list:
    points = []
    for i in range(sides * (2 if inner != 1.0 else 1)):
        r = radius if i % 2 == 0 or inner == 1.0 else radius * inner
        angle = turn + i * math.pi / (sides if inner != 1.0 else sides / 2)
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return points


def _shapes(sides: int, fg: Colour, bg: Colour, inner: float = 1.0) -> Callable[[random.Random], Image.Image]:
    def draw(rng: random.Random) -> Image.Image:
        image, pen = _canvas(rng, bg)
        for _ in range(rng.randint(1, 3)):
            cx, cy = rng.uniform(50, SIZE - 50), rng.uniform(50, SIZE - 50)
            radius = rng.uniform(25, 55)
            if sides == 0:
                pen.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=_jitter(rng, fg))
            else:
                pen.polygon(_polygon(cx, cy, radius, sides, rng.uniform(0, math.pi), inner), fill=_jitter(rng, fg))
        return image

    return draw


def _stripes(fg: Colour, bg: Colour, vertical: bool) -> Callable[[random.Random], Image.Image]:
    def draw(rng: random.Random) -> Image.Image:
        image, pen = _canvas(rng, bg)
        width = rng.randint(8, 20)
        offset = rng.randint(0, width)
        for pos in range(-width + offset, SIZE, 2 * width):
            box = (pos, 0, pos + width, SIZE) if vertical else (0, pos, SIZE, pos + width)
            pen.rectangle(box, fill=_jitter(rng, fg, 15))
        return image.rotate(rng.uniform(-12, 12), fillcolor=bg)

    return draw


def _checker(rng: random.Random) -> Image.Image:
    image, pen = _canvas(rng, (240, 240, 240))
    cell = rng.randint(14, 32)
    for x in range(0, SIZE, cell):
        for y in range(0, SIZE, cell):
            if (x // cell + y // cell) % 2:
                pen.rectangle((x, y, x + cell, y + cell), fill=_jitter(rng, (20, 20, 20), 10))
    return image.rotate(rng.uniform(-20, 20), fillcolor=(240, 240, 240))


def _rings(rng: random.Random) -> Image.Image:
    image, pen = _canvas(rng, (230, 250, 250))
    cx, cy = rng.uniform(70, 120), rng.uniform(70, 120)
    step = rng.randint(8, 14)
    for i, radius in enumerate(range(SIZE, 0, -step)):
        pen.ellipse((cx - radius, cy - radius, cx + radius, cy + radius),
                    fill=_jitter(rng, (0, 128, 128), 20) if i % 2 else (230, 250, 250))
    return image


def _dots(rng: random.Random) -> Image.Image:
    image, pen = _canvas(rng, (150, 150, 150))
    for _ in range(rng.randint(25, 45)):
        x, y, r = rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(4, 10)
        pen.ellipse((x - r, y - r, x + r, y + r), fill=_jitter(rng, (255, 105, 180)))
    return image


def _gradient(rng: random.Random) -> Image.Image:
    top, bottom = _jitter(rng, (255, 94, 58)), _jitter(rng, (120, 40, 140))
    image = Image.new("RGB", (SIZE, SIZE))
    pen = ImageDraw.Draw(image)
    for y in range(SIZE):
        t = y / (SIZE - 1)
        pen.line((0, y, SIZE, y), fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    sun = rng.uniform(25, 45)
    cx, cy = rng.uniform(50, 140), rng.uniform(60, 120)
    pen.ellipse((cx - sun, cy - sun, cx + sun, cy + sun), fill=_jitter(rng, (255, 220, 80)))
    return image


def _gravel(rng: random.Random) -> Image.Image:
    image, pen = _canvas(rng, (110, 80, 50))
    for _ in range(rng.randint(120, 200)):
        x, y, r = rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(2, 7)
        pen.ellipse((x - r, y - r, x + r, y + r), fill=_jitter(rng, (160, 130, 90), 40))
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))


def _crosses(rng: random.Random) -> Image.Image:
    image, pen = _canvas(rng, (250, 250, 250))
    for _ in range(rng.randint(1, 2)):
        cx, cy, arm, w = rng.uniform(60, 130), rng.uniform(60, 130), rng.uniform(30, 55), rng.uniform(10, 18)
        colour = _jitter(rng, (200, 20, 30))
        pen.rectangle((cx - arm, cy - w, cx + arm, cy + w), fill=colour)
        pen.rectangle((cx - w, cy - arm, cx + w, cy + arm), fill=colour)
    return image


CLASSES: dict[str, Callable[[random.Random], Image.Image]] = {
    "red-circles": _shapes(0, (220, 30, 30), (255, 255, 255)),
    "blue-squares": _shapes(4, (30, 60, 200), (250, 230, 90)),
    "green-triangles": _shapes(3, (40, 190, 60), (20, 20, 20)),
    "gold-stars": _shapes(5, (240, 190, 40), (20, 30, 90), inner=0.45),
    "purple-stripes": _stripes((120, 40, 160), (255, 255, 255), vertical=False),
    "orange-bars": _stripes((250, 140, 20), (20, 30, 70), vertical=True),
    "checkerboard": _checker,
    "teal-rings": _rings,
    "pink-dots": _dots,
    "sunsets": _gradient,
    "gravel": _gravel,
    "red-crosses": _crosses,
}


def generate_demo_gallery(folder: str | Path, per_class: int = 25, seed: int = 0) -> int:
    """Write `per_class` JPEGs for each class into folder/<class>/; returns the number written."""
    rng = random.Random(seed)
    folder = Path(folder)
    written = 0
    for name, draw in CLASSES.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(rng).save(folder / name / f"{name}-{i:03d}.jpg", quality=90)
            written += 1
    return written


def demo_image_ids() -> list[int]:
    """Gallery images that came from the demo gallery: a demo class's label and file name (`<class>-NNN.jpg`)."""
    from webapp.gallery.models import Image as Stored

    rows = Stored.objects.filter(role=Stored.Role.GALLERY, label__in=list(CLASSES)).values_list(
        "id", "label", "original_name")
    return [pk for pk, label, name in rows if re.fullmatch(rf"{re.escape(label)}-\d{{3}}\.jpg", name or "")]
