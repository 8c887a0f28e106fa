"""Pictures of mined pairs: one pair's masked crop, and the contact sheet ``plots/mine/pairs.png``.

A pair's crop is the square around its mask's box with a quarter of the box's side as context
on each side (at most the image's longer side, moved inside the image where it fits, padded with
grey beyond it), scaled to ``size`` pixels; pixels outside the
mask are dimmed and the mask is outlined in white.

In the demo world each pair is judged against the truth as :mod:`pipeline.mining.quality`
measures precision (:class:`PairJudge`, built on :func:`~pipeline.mining.quality.judge_pairs`):
*right* when its mask has IoU ≥ 0.5 with the true segment of the noun's class, *wrong* below,
*not judged* when the noun names no class. The contact sheet shows, for each of the most
frequent nouns, a few crops spread evenly over the noun's similarity ranking (best first),
each framed green (right), red (wrong) or grey (not judged, or no truth), with its similarity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw, ImageFont

from core.io import safe_join
from core.rle import decode_rle
from pipeline.datasets.files import read_rgb
from pipeline.datasets.manifest import World
from pipeline.mining.quality import IOU_THRESHOLD, TruthLabels, class_lookup, judge_pairs

CROP_SIZE = 96
SHEET_NOUNS = 12
CROPS_PER_NOUN = 6
CONTEXT = 0.25
DIM = 0.35
PAD_GREY = 128
RIGHT, WRONG, UNJUDGED = (40, 170, 60), (215, 40, 40), (150, 150, 150)
FRAME = 3
NOUN_COLUMN = 130
CAPTION = 14
GAP = 6
FONT_SIZE = 12
#: The columns the pictures read.
PAIR_COLUMNS = ("image_id", "file_name", "noun", "mask_rle", "height", "width", "bbox", "similarity")


@dataclass(frozen=True)
class Verdict:
    """A pair against the truth: ``right`` (IoU ≥ 0.5), ``False`` below, ``None`` when not judged; the IoU."""

    right: bool | None
    iou: float | None

    @property
    def colour(self) -> tuple[int, int, int]:
        return UNJUDGED if self.right is None else RIGHT if self.right else WRONG

    def describe(self) -> str:
        if self.right is None:
            return "not judged (the noun names no class)"
        return f"{'right' if self.right else 'wrong'} (IoU {self.iou:.2f} with the truth)"


class PairJudge:
    """Verdicts of pair rows against a demo world's truth (the matching of :mod:`pipeline.mining.quality`)."""

    def __init__(self, world: World, iou_threshold: float = IOU_THRESHOLD):
        self.labels = TruthLabels(world)
        self.lookup = class_lookup(world.classes)
        self.iou_threshold = iou_threshold

    def judge(self, row: Mapping[str, Any]) -> Verdict:
        verdict = judge_pairs([row], self.labels.load(row["file_name"]), self.lookup)[0]
        if verdict.class_index is None:
            return Verdict(None, None)
        return Verdict(verdict.iou >= self.iou_threshold, round(verdict.iou, 4))


def pair_mask(row: Mapping[str, Any]) -> np.ndarray:
    """The pair's bool mask ``height × width``."""
    return decode_rle({"size": [row["height"], row["width"]], "counts": row["mask_rle"]})


def pair_crop(image: np.ndarray, mask: np.ndarray, *, size: int = CROP_SIZE, context: float = CONTEXT) -> np.ndarray:
    """``size × size × 3`` uint8: the square around the mask's box (see the module docstring)."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"mask {mask.shape} and image {image.shape[:2]} differ in size")
    rows, cols = np.nonzero(mask)
    image_height, image_width = mask.shape
    if rows.size == 0:
        top, left, side = 0, 0, max(mask.shape)
    else:
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        side = int(round(max(height, width) * (1 + 2 * context)))
        side = max(2, height, width, min(side, max(image_height, image_width)))
        top = _place(int(round((rows.min() + rows.max() + 1) / 2 - side / 2)), side, image_height)
        left = _place(int(round((cols.min() + cols.max() + 1) / 2 - side / 2)), side, image_width)
    shown = np.where(mask[..., None], image.astype(np.float32), image.astype(np.float32) * DIM).round().astype(np.uint8)
    edge = mask & ~eroded(mask)
    shown[edge] = 255
    canvas = np.full((side, side, 3), PAD_GREY, np.uint8)
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + side, mask.shape[0]), min(left + side, mask.shape[1])
    canvas[src_top - top : src_bottom - top, src_left - left : src_right - left] = shown[
        src_top:src_bottom, src_left:src_right
    ]
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.Resampling.BILINEAR))


def _place(start: int, side: int, extent: int) -> int:
    """A window's start moved inside ``0..extent`` when it fits there, else centred on the image."""
    if side <= extent:
        return min(max(start, 0), extent - side)
    return (extent - side) // 2


def eroded(mask: np.ndarray) -> np.ndarray:
    """``mask`` eroded by one pixel (4-neighbourhood; pixels on the border of the image stay as they are)."""
    out = mask.copy()
    out[1:, :] &= mask[:-1, :]
    out[:-1, :] &= mask[1:, :]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


def fit(text: str, width: int, face: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> str:
    """``text`` cut with an ellipsis to render within ``width`` pixels."""
    while face.getlength(text) > width and len(text) > 1:
        text = text[:-2] + "…"
    return text


def spread(count: int, picks: int) -> list[int]:
    """``picks`` indices spread evenly over ``range(count)``, first and last included, in order."""
    if count <= picks:
        return list(range(count))
    return sorted(set(np.linspace(0, count - 1, picks).round().astype(int).tolist()))


def pick_pairs(
    pairs: pa.Table, nouns: int = SHEET_NOUNS, per_noun: int = CROPS_PER_NOUN
) -> list[tuple[str, int, list[dict[str, Any]]]]:
    """``(noun, pairs, rows)`` for the ``nouns`` most frequent nouns (ties by noun): up to ``per_noun`` rows
    spread over the noun's pairs ranked by similarity (highest first, ties by image id)."""
    rows = pairs.select(list(PAIR_COLUMNS)).to_pylist()
    counts = Counter(row["noun"] for row in rows)
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:nouns]
    groups = []
    for noun, count in top:
        ranked = sorted((row for row in rows if row["noun"] == noun), key=lambda r: (-r["similarity"], r["image_id"]))
        groups.append((noun, count, [ranked[i] for i in spread(len(ranked), per_noun)]))
    return groups


def contact_sheet(
    pairs: pa.Table,
    images_dir: Path,
    judge: PairJudge | None = None,
    *,
    nouns: int = SHEET_NOUNS,
    per_noun: int = CROPS_PER_NOUN,
    size: int = CROP_SIZE,
) -> Image.Image:
    """The contact sheet of the module docstring; images are read from ``images_dir`` (the pairs' ``file_name``)."""
    groups = pick_pairs(pairs, nouns, per_noun)
    face = ImageFont.load_default(size=FONT_SIZE)
    cell = size + 2 * FRAME
    title_height = 2 * CAPTION + GAP
    width = NOUN_COLUMN + per_noun * (cell + GAP) + GAP
    row_height = cell + CAPTION + GAP
    sheet = Image.new("RGB", (width, title_height + max(1, len(groups)) * row_height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    legend = (
        "green: right (mask IoU >= 0.5 with the noun's class in the truth), red: wrong, grey: not judged"
        if judge is not None
        else "no truth to judge against (not the demo world)"
    )
    draw.text(
        (GAP, 2),
        fit(
            f"mined pairs: {len(groups)} most frequent nouns, crops spread over each noun's "
            "similarity ranking (best first)",
            width - 2 * GAP,
            face,
        ),
        fill=(0, 0, 0),
        font=face,
    )
    draw.text((GAP, 2 + CAPTION), fit(legend, width - 2 * GAP, face), fill=(0, 0, 0), font=face)
    if not groups:
        draw.text((GAP, title_height), "no pairs", fill=(0, 0, 0), font=face)
    images: dict[str, np.ndarray] = {}
    for index, (noun, count, rows) in enumerate(groups):
        top = title_height + index * row_height
        verdicts = [judge.judge(row) if judge is not None else Verdict(None, None) for row in rows]
        judged = [v.right for v in verdicts if v.right is not None]
        draw.text((GAP, top + 4), fit(noun, NOUN_COLUMN - 2 * GAP, face), fill=(0, 0, 0), font=face)
        draw.text((GAP, top + 4 + CAPTION), f"{count} pairs", fill=(80, 80, 80), font=face)
        if judged:
            draw.text((GAP, top + 4 + 2 * CAPTION), f"{sum(judged)}/{len(judged)} right", fill=(80, 80, 80), font=face)
        for column, (row, verdict) in enumerate(zip(rows, verdicts)):
            if row["file_name"] not in images:
                images[row["file_name"]] = read_rgb(safe_join(images_dir, row["file_name"]))
            crop = pair_crop(images[row["file_name"]], pair_mask(row), size=size)
            left = NOUN_COLUMN + column * (cell + GAP)
            draw.rectangle([left, top, left + cell - 1, top + cell - 1], fill=verdict.colour)
            sheet.paste(Image.fromarray(crop), (left + FRAME, top + FRAME))
            draw.text((left, top + cell + 1), f"sim {row['similarity']:.3f}", fill=(0, 0, 0), font=face)
    return sheet


def sheet_judge(world: World) -> PairJudge | None:
    """A :class:`PairJudge` for a world with truth (the demo world), else ``None``."""
    return PairJudge(world) if world.truth_paths is not None else None
