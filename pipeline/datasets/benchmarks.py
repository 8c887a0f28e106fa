"""Semantic-segmentation benchmarks in their prepared on-disk layouts, behind one interface.

| name | root | images | labels | label values |
| --- | --- | --- | --- | --- |
| ade150 | ADEChallengeData2016 | images/validation/*.jpg | annotations/validation/*.png | 0 other (ignore), v → v-1 |
| ade847 | ADE20K_2021_17_01 | images_detectron2/validation/*.jpg | annotations_detectron2/validation/*.tif (uint16) | i → i, 65535 ignore |
| pc459 | VOCdevkit/VOC2010 | JPEGImages/*.jpg | annotations_detectron2/pc459_val/*.tif (uint16) | i → i, 65535 ignore |
| pc59 | VOCdevkit/VOC2010 | JPEGImages/*.jpg | annotations_detectron2/pc59_val/*.png | i → i, 255 ignore |
| voc20 | VOCdevkit/VOC2012 | JPEGImages/*.jpg | SegmentationClass/*.png (palette), keys from ImageSets/Segmentation/val.txt | 0 and 255 ignore, v → v-1 |
| demo | data/world/benchmarks/demo | as ade150, class names in ``classes.json`` | as ade150 | as ade150 |

Keys are file stems: of the images for the ADE layouts, of the labels for
PASCAL-Context (``JPEGImages`` holds more than the validation set), of the list
file for VOC. A missing label, an unreadable file, a label whose size differs
from its image, or a value outside the class list is an error naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.io import read_json, safe_join
from pipeline.datasets.files import check_same_size, read_label, read_rgb
from pipeline.datasets.segmentation import IGNORE, Sample, SegmentationDataset, apply_table, lookup_table
from pipeline.datasets.vocab import class_names as vocab_class_names

__all__ = [
    "LAYOUTS",
    "BenchmarkLayout",
    "FolderBenchmark",
    "Sample",
    "SegmentationDataset",
    "benchmark_names",
    "label_counts",
    "missing_paths",
    "open_benchmark",
    "read_class_list",
]


@dataclass(frozen=True)
class BenchmarkLayout:
    """Where a benchmark keeps its files under its root and how its label values read.

    A raw value ``v`` with ``offset <= v < offset + K`` is class ``v - offset``;
    values in ``ignore`` are ignore; anything else is an error.
    """

    name: str
    images: str
    labels: str
    label_suffix: str
    offset: int
    ignore: tuple[int, ...]
    keys_from: str  # "images", "labels", or a list file relative to the root
    image_suffix: str = ".jpg"
    classes_file: str | None = None  # class list under the root instead of the shipped vocabulary


LAYOUTS: dict[str, BenchmarkLayout] = {
    layout.name: layout
    for layout in (
        BenchmarkLayout("ade150", "images/validation", "annotations/validation", ".png", 1, (0,), "images"),
        BenchmarkLayout(
            "ade847", "images_detectron2/validation", "annotations_detectron2/validation", ".tif", 0, (65535,), "images"
        ),
        BenchmarkLayout("pc459", "JPEGImages", "annotations_detectron2/pc459_val", ".tif", 0, (65535,), "labels"),
        BenchmarkLayout("pc59", "JPEGImages", "annotations_detectron2/pc59_val", ".png", 0, (255,), "labels"),
        BenchmarkLayout(
            "voc20", "JPEGImages", "SegmentationClass", ".png", 1, (0, 255), "ImageSets/Segmentation/val.txt"
        ),
        *(
            BenchmarkLayout(
                name,
                "images/validation",
                "annotations/validation",
                ".png",
                1,
                (0,),
                "images",
                classes_file="classes.json",
            )
            for name in ("demo", "val")  # val: the validation split, in demo's (A-150's) layout
        ),
    )
}


def benchmark_names() -> list[str]:
    return sorted(LAYOUTS)


def _layout(name: str) -> BenchmarkLayout:
    if name not in LAYOUTS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(benchmark_names())}")
    return LAYOUTS[name]


def read_class_list(path: Path) -> list[str]:
    """A ``classes.json`` list of ``"name, synonym, ..."`` strings (whitespace around names stripped)."""
    names = read_json(path)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"{path}: expected a non-empty list of class-name strings")
    return [", ".join(part.strip() for part in name.split(",") if part.strip()) for name in names]


def missing_paths(name: str, root: str | Path) -> list[Path]:
    """The folders and files a benchmark needs under ``root`` that do not exist (empty when complete)."""
    layout, root = _layout(name), Path(root)
    needed = [root / layout.images, root / layout.labels]
    if layout.keys_from not in ("images", "labels"):
        needed.append(root / layout.keys_from)
    if layout.classes_file:
        needed.append(root / layout.classes_file)
    if not root.is_dir():
        return [root]
    return [path for path in needed if not path.exists()]


class FolderBenchmark:
    """A :class:`SegmentationDataset` over one :class:`BenchmarkLayout` under ``root``."""

    def __init__(self, layout: BenchmarkLayout, root: str | Path, class_names: list[str] | None = None):
        self.layout, self.root = layout, Path(root)
        missing = missing_paths(layout.name, self.root)
        if missing:
            raise FileNotFoundError(
                f"benchmark {layout.name} at {self.root}: missing {', '.join(str(p) for p in missing)}"
            )
        if class_names is None:
            if layout.classes_file:
                class_names = read_class_list(self.root / layout.classes_file)
            else:
                class_names = vocab_class_names(layout.name)
        self.name = layout.name
        self.class_names = list(class_names)
        self.images_dir = self.root / layout.images
        self.labels_dir = self.root / layout.labels
        mapping = {layout.offset + i: i for i in range(len(self.class_names))}
        mapping.update(dict.fromkeys(layout.ignore, IGNORE))
        self._table = lookup_table(mapping, 65536 if max(mapping) > 255 else 256)
        self._keys = self._list_keys()

    def _list_keys(self) -> list[str]:
        layout = self.layout
        if layout.keys_from == "images":
            return sorted(p.stem for p in self.images_dir.iterdir() if p.suffix == layout.image_suffix)
        if layout.keys_from == "labels":
            return sorted(p.stem for p in self.labels_dir.iterdir() if p.suffix == layout.label_suffix)
        list_file = self.root / layout.keys_from
        keys = [line.strip() for line in list_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        for key in keys:
            safe_join(self.images_dir, key + layout.image_suffix)  # refuse keys that escape the root
        return sorted(set(keys))

    def keys(self) -> list[str]:
        return list(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def paths(self, key: str) -> tuple[Path, Path]:
        """``(image path, label path)`` of ``key``."""
        return (
            safe_join(self.images_dir, key + self.layout.image_suffix),
            safe_join(self.labels_dir, key + self.layout.label_suffix),
        )

    def load(self, key: str) -> Sample:
        image_path, label_path = self.paths(key)
        if not label_path.is_file():
            raise FileNotFoundError(f"{label_path}: annotation of {self.name} image {key} not found")
        image = read_rgb(image_path)
        raw = read_label(label_path)
        check_same_size(raw, image, label_path, image_path)
        return Sample(key, image, apply_table(raw, self._table, label_path))


def open_benchmark(name: str, root: str | Path, class_names: list[str] | None = None) -> SegmentationDataset:
    """Open benchmark ``name`` (see :data:`LAYOUTS`) in its prepared layout under ``root``.

    ``class_names`` replaces the layout's vocabulary (the demo world's benchmarks name their own).
    """
    return FolderBenchmark(_layout(name), root, class_names)


def label_counts(dataset: SegmentationDataset) -> np.ndarray:
    """Pixels per class over the whole dataset (ignore excluded); loads every sample."""
    counts = np.zeros(len(dataset.class_names), dtype=np.int64)
    for key in dataset.keys():  # noqa: SIM118 (a SegmentationDataset is not iterable: keys() lists it)
        label = dataset.load(key).label
        counts += np.bincount(label[label >= 0].ravel(), minlength=len(counts))[: len(counts)]
    return counts
