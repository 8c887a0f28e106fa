"""A montage to eyeball the world: each row shows an image, its full label overlay, and its captions."""

from __future__ import annotations

import colorsys
import textwrap
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SCALE = 2
TEXT_WIDTH = 440
MARGIN = 6


@dataclass(frozen=True)
class PreviewItem:
    """An image (``H×W×3 uint8``), its full label (``H×W`` class indices) and its captions."""

    image: np.ndarray
    truth: np.ndarray
    captions: list[str]


def class_colours(count: int) -> np.ndarray:
    """``count`` well-separated RGB colours (golden-ratio hues), the same on every run."""
    colours = [
        colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.75 if i % 2 else 0.95, 0.95 if i % 3 else 0.7)
        for i in range(count)
    ]
    return (np.asarray(colours) * 255).round().astype(np.uint8)


def _overlay(item: PreviewItem, colours: np.ndarray) -> np.ndarray:
    tint = colours[np.clip(item.truth, 0, len(colours) - 1)].astype(np.float32)
    blended = 0.45 * item.image.astype(np.float32) + 0.55 * tint
    return blended.round().astype(np.uint8)


def make_preview(items: list[PreviewItem], class_names: list[str]) -> Image.Image:
    """The montage of ``items``; class names (unseen ones marked by the caller) are drawn on the overlays."""
    if not items:
        raise ValueError("make_preview needs at least one item")
    font = ImageFont.load_default(size=11)
    colours = class_colours(len(class_names))
    side = items[0].image.shape[0] * SCALE
    row_height = side + MARGIN
    sheet = Image.new("RGB", (2 * side + TEXT_WIDTH + 3 * MARGIN, row_height * len(items) + MARGIN), "white")
    draw = ImageDraw.Draw(sheet)
    for row, item in enumerate(items):
        top = MARGIN + row * row_height
        picture = Image.fromarray(item.image).resize((side, side), Image.Resampling.NEAREST)
        overlay = Image.fromarray(_overlay(item, colours)).resize((side, side), Image.Resampling.NEAREST)
        sheet.paste(picture, (MARGIN, top))
        sheet.paste(overlay, (2 * MARGIN + side, top))
        for index in np.unique(item.truth):
            if not 0 <= index < len(class_names):
                continue
            ys, xs = np.nonzero(item.truth == index)
            x = 2 * MARGIN + side + int(np.median(xs)) * SCALE
            y = top + int(np.median(ys)) * SCALE
            draw.text(
                (x, y), class_names[index], fill="white", font=font, anchor="mm", stroke_width=2, stroke_fill="black"
            )
        y = top
        for caption in item.captions:
            for line in textwrap.wrap(caption, width=70):
                draw.text((3 * MARGIN + 2 * side, y), line, fill="black", font=font)
                y += 14
            y += 4
    return sheet
