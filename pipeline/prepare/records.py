"""What the prepare job takes and writes: one :class:`Item` per input image, one row per prepared pair or reject.

Every item of a benchmark ends up exactly once in ``items/`` (:data:`ITEMS`, a prepared,
validated image–label pair) or in ``rejects/`` (:data:`REJECTS`, with one of :data:`REASONS`).
Paths in both tables are relative to the benchmark's raw download folder, so the rows do
not depend on where the downloads live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from core.columns import required, required_list

#: The benchmarks the stage prepares, with their expected number of validation images, and the
#: COCO-Stuff training labels (checked in place: they pair one to one with the images).
EXPECTED_IMAGES: dict[str, int] = {
    "ade150": 2000,
    "ade847": 2000,
    "pc59": 5105,
    "pc459": 5105,
    "voc20": 1449,
    "coco_stuff171": 118287,
}

REASON_UNREADABLE = "unreadable"  # an image or label file that does not decode (or a .mat without LabelMap)
REASON_SIZE_MISMATCH = "size_mismatch"  # label and image sizes differ
REASON_OUT_OF_RANGE = "out_of_range"  # label values that are no class of the benchmark and not ignore
REASON_IMAGE_WITHOUT_LABEL = "image_without_label"
REASON_LABEL_WITHOUT_IMAGE = "label_without_image"
REASON_MISSING = "missing"  # listed by the split (or index) but neither its image nor its label exists
REASONS = (
    REASON_UNREADABLE,
    REASON_SIZE_MISMATCH,
    REASON_OUT_OF_RANGE,
    REASON_IMAGE_WITHOUT_LABEL,
    REASON_LABEL_WITHOUT_IMAGE,
    REASON_MISSING,
)


@dataclass(frozen=True)
class Item:
    """One input of a benchmark: its key (the file stem the readers use), the absolute paths of
    its raw image and label (None when absent from the download), their paths relative to the
    raw folder (for the rows), and what its converter needs besides (``extra``: plain data)."""

    benchmark: str
    key: str
    image: str | None
    label: str | None
    image_name: str | None = None
    label_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


class Rejected(Exception):
    """An item that cannot be prepared: ``reason`` (one of :data:`REASONS`) and a human-readable ``detail``."""

    def __init__(self, reason: str, detail: str):
        if reason not in REASONS:
            raise ValueError(f"unknown reject reason {reason!r}; known: {REASONS}")
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


#: One row per prepared pair: the class indices (0-based, the benchmark's class list) present
#: in its label, its pixels and how many of them are ignore.
ITEMS = pa.schema(
    [
        required("benchmark", pa.string()),
        required("key", pa.string()),
        required("image", pa.string()),
        required("label", pa.string()),
        required("height", pa.int32()),
        required("width", pa.int32()),
        required("pixels", pa.int64()),
        required("ignore_pixels", pa.int64()),
        required_list("classes", pa.int32()),
    ]
)
#: One row per item that could not be prepared.
REJECTS = pa.schema(
    [
        required("benchmark", pa.string()),
        required("key", pa.string()),
        pa.field("image", pa.string(), nullable=True),
        pa.field("label", pa.string(), nullable=True),
        required("reason", pa.string()),
        required("detail", pa.string()),
    ]
)
SORT_BY = ("benchmark", "key")
SHARD_BY = ("benchmark", "key")


def item_row(item: Item, height: int, width: int, ignore_pixels: int, classes: list[int]) -> dict[str, Any]:
    """The :data:`ITEMS` row of a prepared item."""
    return {
        "benchmark": item.benchmark,
        "key": item.key,
        "image": item.image_name or "",
        "label": item.label_name or "",
        "height": int(height),
        "width": int(width),
        "pixels": int(height) * int(width),
        "ignore_pixels": int(ignore_pixels),
        "classes": sorted(int(c) for c in classes),
    }


def reject_row(item: Item, reason: str, detail: str) -> dict[str, Any]:
    """The :data:`REJECTS` row of a rejected item."""
    if reason not in REASONS:
        raise ValueError(f"unknown reject reason {reason!r}; known: {REASONS}")
    return {
        "benchmark": item.benchmark,
        "key": item.key,
        "image": item.image_name,
        "label": item.label_name,
        "reason": reason,
        "detail": detail,
    }
