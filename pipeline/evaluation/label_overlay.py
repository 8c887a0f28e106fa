"""Pictures of label maps: a fixed palette, colour overlays and legends (PIL only).

Used by ``ovseg predict`` (one image with its overlay and a legend) and by the
``evaluate`` stage (image | ground truth | prediction sheets). In ``ovseg predict``'s
pictures colours depend only on the class index; a sheet numbers the classes it shows
and colours them by that rank, so that a few classes of a large vocabulary never get
near-identical colours.
Pixels labelled -1 (ignore / no prediction) are left uncoloured.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Width in pixels of the legend panel put to the right of a picture.
LEGEND_WIDTH = 220
FONT_SIZE = 12
ROW_HEIGHT = 18
SWATCH = 12
PADDING = 6
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
IGNORE_COLOUR = (0, 0, 0)


def class_colour(index: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB colour for class ``index`` (golden-ratio hue steps)."""
    if index < 0:
        return IGNORE_COLOUR
    hue = (index * 0.618033988749895) % 1.0
    saturation = (0.85, 0.6, 0.95)[index % 3]
    value = (0.95, 0.75, 0.6)[(index // 3) % 3]
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def palette(num_classes: int) -> np.ndarray:
    """``[num_classes, 3]`` uint8 colours, row ``i`` = :func:`class_colour` ``(i)``."""
    return np.array([class_colour(i) for i in range(num_classes)], dtype=np.uint8).reshape(-1, 3)


def colorize(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``H×W`` labels → ``H×W×3`` uint8 colours; -1 is black."""
    _check_labels(labels, num_classes)
    colours = np.concatenate([palette(num_classes), np.array([IGNORE_COLOUR], np.uint8)])
    return colours[np.where(labels < 0, num_classes, labels)]


def blend(image: np.ndarray, labels: np.ndarray, num_classes: int, alpha: float = 0.55) -> np.ndarray:
    """The image with each labelled pixel mixed with its class colour (``alpha`` = colour weight)."""
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    mixed = (1.0 - alpha) * image.astype(np.float32) + alpha * colorize(labels, num_classes).astype(np.float32)
    out = np.where((labels >= 0)[..., None], mixed.round(), image.astype(np.float32))
    return out.astype(np.uint8)


@lru_cache(maxsize=4)
def font(size: int = FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at ``size`` (no system font is needed, so pictures are the same everywhere)."""
    return ImageFont.load_default(size=size)


def fit_text(text: str, width: int, face: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> str:
    """``text`` shortened with an ellipsis so that it renders within ``width`` pixels."""
    if face.getlength(text) <= width:
        return text
    while text and face.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def legend_height(rows: int) -> int:
    """Height in pixels of a legend with ``rows`` entries."""
    return 2 * PADDING + rows * ROW_HEIGHT


def legend(entries: Sequence[tuple[int, str]], width: int = LEGEND_WIDTH, height: int | None = None) -> Image.Image:
    """A white panel listing ``(class index, text)`` entries with colour swatches, top to bottom.

    ``height`` defaults to :func:`legend_height`; entries that do not fit are dropped
    and the last visible row says how many more there are.
    """
    height = legend_height(len(entries)) if height is None else height
    panel = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(panel)
    face = font()
    capacity = max(0, (height - 2 * PADDING) // ROW_HEIGHT)
    shown = list(entries)
    if len(shown) > capacity:
        shown = shown[: max(0, capacity - 1)]
        hidden = len(entries) - len(shown)
    else:
        hidden = 0
    text_x = PADDING + SWATCH + PADDING
    for row, (index, text) in enumerate(shown):
        top = PADDING + row * ROW_HEIGHT
        swatch_top = top + (ROW_HEIGHT - SWATCH) // 2
        draw.rectangle(
            [PADDING, swatch_top, PADDING + SWATCH - 1, swatch_top + SWATCH - 1], fill=class_colour(index), outline=TEXT
        )
        draw.text((text_x, top + 2), fit_text(text, width - text_x - PADDING, face), fill=TEXT, font=face)
    if hidden and capacity > 0:
        top = PADDING + len(shown) * ROW_HEIGHT
        draw.text((text_x, top + 2), f"… {hidden} more", fill=TEXT, font=face)
    return panel


def with_legend(picture: np.ndarray, entries: Sequence[tuple[int, str]], width: int = LEGEND_WIDTH) -> Image.Image:
    """``picture`` (``H×W×3``) with a legend of ``width`` pixels to its right.

    The result is ``(W + width) × max(H, legend_height(len(entries)))`` pixels; the
    area below a shorter picture is white.
    """
    height = max(picture.shape[0], legend_height(len(entries)))
    canvas = Image.new("RGB", (picture.shape[1] + width, height), BACKGROUND)
    canvas.paste(Image.fromarray(picture), (0, 0))
    canvas.paste(legend(entries, width, height), (picture.shape[1], 0))
    return canvas


def sheet_classes(rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> list[int]:
    """The classes shown anywhere on a sheet (in a ground truth or a prediction), sorted by index."""
    shown: set[int] = set()
    for _, _, gt, pred in rows:
        shown |= set(np.unique(gt).tolist()) | set(np.unique(pred).tolist())
    return sorted(shown - {-1})


def row_legend(
    gt: np.ndarray, pred: np.ndarray, class_names: Sequence[str], colour_of: dict[int, int]
) -> list[tuple[int, str]]:
    """Legend entries ``(colour index, text)`` of one sheet row: every class in its ground truth or its
    prediction, sorted by name; a class only in the prediction is marked ``(pred. only)``, one only in the
    ground truth ``(missed)``."""
    in_gt = set(np.unique(gt).tolist()) - {-1}
    in_pred = set(np.unique(pred).tolist()) - {-1}
    entries = []
    for c in in_gt | in_pred:
        name = class_names[c].split(",")[0].strip()
        mark = "" if c in in_gt and c in in_pred else (" (pred. only)" if c in in_pred else " (missed)")
        entries.append((name.lower(), name + mark, colour_of[c]))
    return [(colour, text) for _, text, colour in sorted(entries)]


def comparison_sheet(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    class_names: Sequence[str],
    *,
    panel_height: int = 160,
    title: str = "",
) -> Image.Image:
    """One row per ``(caption, image, ground truth, prediction)``: image | ground truth | prediction | legend.

    Panels are scaled (nearest) to ``panel_height`` keeping their aspect ratio; each
    row's legend lists every class in its ground truth or prediction (:func:`row_legend`),
    and the row grows to fit it. Labels are indices into ``class_names``. Colours are
    the sheet's own: the classes shown on the sheet, in index order, take the first
    colours of :func:`class_colour`, so they stay distinct in an 847-class vocabulary.
    """
    if not rows:
        raise ValueError("comparison_sheet needs at least one row")
    face = font()
    header = ROW_HEIGHT + PADDING
    top_title = ROW_HEIGHT if title else 0
    shown = sheet_classes(rows)
    colour_of = {c: rank for rank, c in enumerate(shown)}
    local = np.full(len(class_names) + 1, -1, dtype=np.int64)  # class index (-1 last) -> sheet colour
    local[shown] = np.arange(len(shown))
    panels, widths, legends = [], [], []
    for _caption, image, gt, pred in rows:
        _check_labels(gt, len(class_names))
        _check_labels(pred, len(class_names))
        h, w = image.shape[:2]
        size = (max(1, round(w * panel_height / h)), panel_height)
        trio = [image, blend(image, local[gt], max(len(shown), 1)), blend(image, local[pred], max(len(shown), 1))]
        panels.append([Image.fromarray(p).resize(size, Image.Resampling.NEAREST) for p in trio])
        widths.append(size[0])
        legends.append(row_legend(gt, pred, class_names, colour_of))
    column = max(widths)
    heights = [max(panel_height, legend_height(len(entries))) for entries in legends]
    sheet_width = 3 * (column + PADDING) + LEGEND_WIDTH
    sheet = Image.new("RGB", (sheet_width, top_title + header + sum(h + header for h in heights)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((PADDING, 2), fit_text(title, sheet_width - 2 * PADDING, face), fill=TEXT, font=face)
    for col, heading in enumerate(("image", "ground truth", "prediction")):
        draw.text((col * (column + PADDING) + PADDING, top_title + 2), heading, fill=TEXT, font=face)
    top = top_title + header
    for (caption, *_), row_panels, entries, height in zip(rows, panels, legends, heights):
        draw.text((PADDING, top), fit_text(caption, sheet_width - 2 * PADDING, face), fill=TEXT, font=face)
        for col, panel in enumerate(row_panels):
            sheet.paste(panel, (col * (column + PADDING), top + ROW_HEIGHT))
        sheet.paste(legend(entries, LEGEND_WIDTH, height), (3 * (column + PADDING), top + ROW_HEIGHT))
        top += height + header
    return sheet


def _check_labels(labels: np.ndarray, num_classes: int) -> None:
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer H×W array, got {labels.dtype} of shape {labels.shape}")
    if labels.size and (labels.min() < -1 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in -1..{num_classes - 1}, got {labels.min()}..{labels.max()}")
