"""ADE20K-150 and the COCO-Stuff training labels: already in the layout the readers take, validated in place.

* ``ade150``: ``ADEChallengeData2016/images/validation/*.jpg`` and ``annotations/validation/*.png``
  (0 other, v → class v-1 of 150).
* ``coco_stuff171``: COCO's ``train2017/*.jpg`` and ``stuffthingmaps_trainval2017``'s
  ``train2017/*.png`` (value ``id - 1`` of the 171 COCO-Stuff categories, 255 ignore).

Keys are the file stems of either folder, so an image without a label and a label without
an image are both accounted for. Nothing is written: the rows describe the files as they are.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.datasets.benchmarks import LAYOUTS
from pipeline.datasets.coco import coco_stuff_table
from pipeline.datasets.vocab import class_names, coco_stuff_categories
from pipeline.prepare.checks import checked_pair, load_label
from pipeline.prepare.config import COCO_STUFF, ConvertOptions
from pipeline.prepare.label_maps import IGNORE, classes_row, value_table
from pipeline.prepare.records import Item

ADE150 = "ade150"


def _stems(folder: Path, suffix: str) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {path.name[: -len(suffix)]: path for path in folder.iterdir() if path.name.endswith(suffix)}


def pair_items(
    benchmark: str, root: Path, images: Path, labels: Path, image_suffix: str, label_suffix: str
) -> list[Item]:
    """One item per stem found among ``images`` or ``labels`` (folders under ``root``), sorted."""
    if not images.is_dir() and not labels.is_dir():
        raise FileNotFoundError(f"{benchmark}: neither {images} nor {labels} exists")
    image_files, label_files = _stems(images, image_suffix), _stems(labels, label_suffix)
    items = []
    for key in sorted(set(image_files) | set(label_files)):
        image, label = image_files.get(key), label_files.get(key)
        items.append(
            Item(
                benchmark,
                key,
                str(image) if image else None,
                str(label) if label else None,
                (images / (key + image_suffix)).relative_to(root).as_posix(),
                (labels / (key + label_suffix)).relative_to(root).as_posix(),
            )
        )
    return items


def ade150_items(root: Path) -> list[Item]:
    """The ADE20K-150 validation pairs of ``ADEChallengeData2016``."""
    layout = LAYOUTS[ADE150]
    return pair_items(
        ADE150, root, root / layout.images, root / layout.labels, layout.image_suffix, layout.label_suffix
    )


def coco_stuff_items(images: Path, labels: Path) -> list[Item]:
    """The COCO-Stuff training pairs (paths relative to the folder holding both, usually the COCO root)."""
    return pair_items(COCO_STUFF, Path(os.path.commonpath([images, labels])), images, labels, ".jpg", ".png")


_ADE150_TABLE = value_table({0: IGNORE, **{value: value - 1 for value in range(1, len(class_names(ADE150)) + 1)}}, 256)


@functools.lru_cache(maxsize=2)
def _table(benchmark: str) -> np.ndarray:
    if benchmark == ADE150:
        return _ADE150_TABLE
    return coco_stuff_table(category["id"] for category in coco_stuff_categories())


def validate(item: Item, out: Path, options: ConvertOptions) -> dict[str, Any]:
    """Check one pair where it lies (``out`` is not written); its row."""
    classes = checked_pair(item, load_label, _table(item.benchmark)).classes
    return classes_row(item, classes)
