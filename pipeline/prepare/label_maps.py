"""Label arrays: raw values to class indices, resizing, statistics and deterministic encoding.

In memory a converted label is ``int32`` class indices with ``-1`` = ignore (the readers'
convention, :mod:`pipeline.datasets.segmentation`); on disk each benchmark has its own
(:mod:`pipeline.datasets.benchmarks`), written by :func:`encode_png` or :func:`encode_tiff16`.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from pipeline.prepare.records import REASON_OUT_OF_RANGE, Item, Rejected, item_row

IGNORE = -1
INVALID = -2
# Lossless and deterministic; detectron2's readers (PIL) and ours read it.
TIFF_COMPRESSION = "tiff_adobe_deflate"


def value_table(mapping: dict[int, int], size: int) -> np.ndarray:
    """An ``int32`` table of ``size`` entries: raw value → class index or :data:`IGNORE`; :data:`INVALID` elsewhere."""
    table = np.full(size, INVALID, dtype=np.int32)
    for value, index in mapping.items():
        table[value] = index
    return table


def to_classes(raw: np.ndarray, table: np.ndarray, what: str) -> np.ndarray:
    """``raw`` label values through ``table`` (:func:`value_table`); values it does not know raise
    :class:`Rejected` (``out_of_range``) listing them, ``what`` naming the file."""
    raw = np.asarray(raw)
    if raw.size and (raw.min() < 0 or raw.max() >= len(table)):
        outside = np.unique(raw[(raw < 0) | (raw >= len(table))])
        raise Rejected(REASON_OUT_OF_RANGE, f"{what}: label values {_listed(outside)} outside 0..{len(table) - 1}")
    classes = table[raw]
    if (classes == INVALID).any():
        raise Rejected(
            REASON_OUT_OF_RANGE,
            f"{what}: label values {_listed(np.unique(raw[classes == INVALID]))} "
            f"are no class of the benchmark and not ignore",
        )
    return classes


def _listed(values: np.ndarray, limit: int = 10) -> str:
    listed = [int(v) for v in values]
    return str(listed[:limit]) + (f" (+{len(listed) - limit} more)" if len(listed) > limit else "")


def decode_ade_rgb(seg: np.ndarray) -> np.ndarray:
    """ADE20K's ``*_seg.png`` (``H×W×3`` RGB) to its object class ids: ``R / 10 * 256 + G`` (0 = unlabelled)."""
    if seg.ndim != 3 or seg.shape[2] < 3:
        raise ValueError(f"expected an H×W×3 RGB segmentation, got shape {seg.shape}")
    red, green = seg[..., 0].astype(np.int32), seg[..., 1].astype(np.int32)
    return (red // 10) * 256 + green


def short_side_size(height: int, width: int, max_short_side: int | None) -> tuple[int, int]:
    """The size detectron2's ADE20K-full preparation resizes to: a shorter side above
    ``max_short_side`` becomes it, the longer side keeps the ratio (Python's ``round``)."""
    if max_short_side is None:
        return height, width
    if width >= height > max_short_side:
        return max_short_side, round(width / float(height) * max_short_side)
    if height >= width > max_short_side:
        return round(height / float(width) * max_short_side), max_short_side
    return height, width


def resize_nearest(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize sampling each output pixel's centre (values are never mixed)."""
    rows = np.minimum(((np.arange(height) + 0.5) * label.shape[0] / height).astype(np.int64), label.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * label.shape[1] / width).astype(np.int64), label.shape[1] - 1)
    return label[rows[:, None], cols[None, :]]


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of an ``H×W×3 uint8`` image (PIL)."""
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def label_stats(classes: np.ndarray) -> tuple[int, list[int]]:
    """``(ignore pixels, sorted class indices present)`` of a converted label."""
    present = np.unique(classes)
    return int((classes == IGNORE).sum()), [int(c) for c in present if c >= 0]


def classes_row(item: Item, classes: np.ndarray) -> dict[str, Any]:
    """The :data:`pipeline.prepare.records.ITEMS` row of ``item`` prepared as ``classes [H, W]``."""
    ignore_pixels, present = label_stats(classes)
    return item_row(item, classes.shape[0], classes.shape[1], ignore_pixels, present)


def to_stored(classes: np.ndarray, ignore_value: int, dtype: type) -> np.ndarray:
    """Class indices back to an on-disk convention: index ``i`` stored as ``i``, ignore as ``ignore_value``."""
    stored = classes.astype(np.int64)
    stored[classes == IGNORE] = ignore_value
    if stored.size and stored.max() > np.iinfo(dtype).max:
        raise ValueError(f"class index {int(stored.max())} does not fit {np.dtype(dtype).name}")
    return stored.astype(dtype)


def encode_png(label: np.ndarray) -> bytes:
    """An 8-bit single-channel PNG of ``label`` (``uint8``), the same bytes for the same array."""
    if label.dtype != np.uint8 or label.ndim != 2:
        raise ValueError(f"encode_png takes a 2-D uint8 array, got {label.dtype} {label.shape}")
    buffer = io.BytesIO()
    Image.fromarray(label).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_tiff16(label: np.ndarray) -> bytes:
    """A 16-bit single-channel TIFF of ``label`` (``uint16``), deflate-compressed, the same bytes for the same array."""
    if label.dtype != np.uint16 or label.ndim != 2:
        raise ValueError(f"encode_tiff16 takes a 2-D uint16 array, got {label.dtype} {label.shape}")
    buffer = io.BytesIO()
    Image.fromarray(label).save(buffer, format="TIFF", compression=TIFF_COMPRESSION)
    return buffer.getvalue()


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """A baseline JPEG of an ``H×W×3 uint8`` image at ``quality``, without metadata."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
