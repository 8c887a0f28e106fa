"""PASCAL VOC-20 from VOC2012: ``SegmentationClass`` palette PNGs of the ``ImageSets/Segmentation/val.txt`` images.

Raw download (``VOCtrainval_11-May-2012.tar``)::

    VOC2012/JPEGImages/<key>.jpg
    VOC2012/SegmentationClass/<key>.png      palette indices: 0 background, 1..20 the classes, 255 the border
    VOC2012/ImageSets/Segmentation/val.txt   the 1,449 validation keys

The layout is already the one the ``voc20`` reader takes (background and border ignored, v → v-1);
the prepared ``VOCdevkit/VOC2012`` holds only the validated pairs, both files copied byte for
byte, and a ``val.txt`` listing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.io import atomic_write_text, safe_join
from pipeline.datasets.benchmarks import LAYOUTS
from pipeline.prepare.checks import checked_pair, copy_file, load_label, read_split
from pipeline.prepare.config import ConvertOptions
from pipeline.prepare.label_maps import IGNORE, classes_row, value_table
from pipeline.prepare.records import Item

BENCHMARK = "voc20"
CLASSES = 20
_TABLE = value_table({0: IGNORE, 255: IGNORE, **{value: value - 1 for value in range(1, CLASSES + 1)}}, 256)


def list_items(root: Path) -> list[Item]:
    """One item per key of the validation list, sorted."""
    layout = LAYOUTS[BENCHMARK]
    items = []
    for key in read_split(root / layout.keys_from):
        image = f"{layout.images}/{key}{layout.image_suffix}"
        label = f"{layout.labels}/{key}{layout.label_suffix}"
        items.append(Item(BENCHMARK, key, str(safe_join(root, image)), str(safe_join(root, label)), image, label))
    return items


def convert(item: Item, out: Path, options: ConvertOptions) -> dict[str, Any]:
    """Validate one pair and copy it under ``out`` (the prepared ``VOC2012``); its row."""
    pair = checked_pair(item, load_label, _TABLE)
    layout = LAYOUTS[BENCHMARK]
    copy_file(pair.image, out / layout.images / (item.key + layout.image_suffix))
    copy_file(pair.label, out / layout.labels / (item.key + layout.label_suffix))
    return classes_row(item, pair.classes)


def write_split(out: Path, keys: list[str]) -> None:
    """The prepared ``val.txt``: the prepared keys, sorted, one per line."""
    atomic_write_text(out / LAYOUTS[BENCHMARK].keys_from, "".join(f"{key}\n" for key in sorted(keys)))
