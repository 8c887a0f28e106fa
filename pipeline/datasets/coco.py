"""COCO on disk: the captions JSON and COCO-Stuff semantic label PNGs.

The demo world writes the same formats, so this module reads both the real
COCO 2017 training split and ``data/world/coco/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.io import UnsafePathError, read_json, safe_join
from pipeline.datasets.files import check_same_size, read_label, read_rgb
from pipeline.datasets.segmentation import IGNORE, Sample, apply_table, lookup_table

COCO_STUFF_IGNORE = 255


@dataclass(frozen=True)
class ImageRecord:
    image_id: int
    file_name: str
    path: Path
    height: int
    width: int


@dataclass(frozen=True)
class Caption:
    caption_id: int
    image_id: int
    text: str


@dataclass
class CocoCaptions:
    """A captions file: ``images`` by id (id order), ``captions`` per known image
    (sorted by caption id; images without captions are absent), ``orphans``:
    captions whose image id is unknown, in caption-id order."""

    images: dict[int, ImageRecord] = field(default_factory=dict)
    captions: dict[int, list[Caption]] = field(default_factory=dict)
    orphans: list[Caption] = field(default_factory=list)

    def all_captions(self) -> list[Caption]:
        """Every caption of a known image, in (image id, caption id) order."""
        return [caption for image_id in self.captions for caption in self.captions[image_id]]


def _require(entry: Any, keys: dict[str, type | tuple[type, ...]], where: str, path: Path) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: {where} is not an object")
    for key, kind in keys.items():
        if key not in entry:
            raise ValueError(f"{path}: {where} lacks key '{key}'")
        value = entry[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"{path}: {where} key '{key}' has the wrong type ({type(value).__name__})")


def read_coco_captions(captions_json: Path, images_dir: Path) -> CocoCaptions:
    """Read a COCO captions file (``images`` + ``annotations`` with ``caption``).

    Image files are resolved under ``images_dir`` with :func:`core.io.safe_join`;
    an absolute ``file_name`` or one escaping ``images_dir`` raises
    :class:`core.io.UnsafePathError` naming the JSON file and the entry.
    Malformed JSON, missing keys, wrong types or duplicate ids raise ``ValueError``
    naming the file. Image files are not opened here.
    """
    captions_json = Path(captions_json)
    data = read_json(captions_json)
    if not isinstance(data, dict):
        raise ValueError(f"{captions_json}: top level is not an object")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{captions_json}: missing list '{key}'")

    records: dict[int, ImageRecord] = {}
    for position, entry in enumerate(data["images"]):
        where = f"images[{position}]"
        _require(entry, {"id": int, "file_name": str, "height": int, "width": int}, where, captions_json)
        image_id = entry["id"]
        if image_id in records:
            raise ValueError(f"{captions_json}: {where} repeats image id {image_id}")
        try:
            path = safe_join(images_dir, entry["file_name"])
        except UnsafePathError as exc:
            raise UnsafePathError(f"{captions_json}: {where} (image id {image_id}): {exc}") from None
        records[image_id] = ImageRecord(image_id, entry["file_name"], path, entry["height"], entry["width"])

    captions: dict[int, list[Caption]] = {}
    orphans: list[Caption] = []
    seen_ids: set[int] = set()
    for position, entry in enumerate(data["annotations"]):
        where = f"annotations[{position}]"
        _require(entry, {"id": int, "image_id": int, "caption": str}, where, captions_json)
        if entry["id"] in seen_ids:
            raise ValueError(f"{captions_json}: {where} repeats caption id {entry['id']}")
        seen_ids.add(entry["id"])
        caption = Caption(entry["id"], entry["image_id"], entry["caption"].strip())
        if caption.image_id in records:
            captions.setdefault(caption.image_id, []).append(caption)
        else:
            orphans.append(caption)

    return CocoCaptions(
        images={image_id: records[image_id] for image_id in sorted(records)},
        captions={image_id: sorted(captions[image_id], key=lambda c: c.caption_id) for image_id in sorted(captions)},
        orphans=sorted(orphans, key=lambda c: c.caption_id),
    )


def coco_stuff_table(category_ids: Iterable[int], ignored_ids: Iterable[int] = ()) -> np.ndarray:
    """Lookup table from COCO-Stuff label values (``id - 1``, 255 = ignore) to
    contiguous indices in the order of ``category_ids``; ignore, and the categories of
    ``ignored_ids`` (a zero-shot split's unseen classes), map to -1."""
    mapping = {category_id - 1: index for index, category_id in enumerate(category_ids)}
    ignored = {category_id - 1 for category_id in ignored_ids}
    if any(value < 0 or value >= COCO_STUFF_IGNORE for value in [*mapping, *ignored]):
        raise ValueError(f"COCO-Stuff category ids must lie in 1..{COCO_STUFF_IGNORE}")
    if ignored & set(mapping):
        raise ValueError(
            f"COCO-Stuff category ids {sorted(v + 1 for v in ignored & set(mapping))} are both classes and ignored"
        )
    mapping.update(dict.fromkeys(ignored, IGNORE))
    mapping[COCO_STUFF_IGNORE] = IGNORE
    return lookup_table(mapping, 256)


def read_coco_stuff_label(path: Path, table: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read one COCO-Stuff label PNG as ``H×W int32`` contiguous indices (-1 = ignore).

    ``table`` comes from :func:`coco_stuff_table`. A value that is not a listed
    category (nor 255), or a size other than ``shape`` (``(H, W)``), is an error
    naming the file.
    """
    raw = read_label(path)
    if shape is not None and raw.shape != tuple(shape):
        raise ValueError(
            f"{path}: label size {raw.shape[1]}x{raw.shape[0]} differs from its image size {shape[1]}x{shape[0]}"
        )
    return apply_table(raw, table, path)


class CocoStuffLabels:
    """COCO-Stuff style semantic labels as a :class:`SegmentationDataset`.

    Keys are the stems of ``labels_dir/*.png`` (sorted); each image is
    ``images_dir/<key><image_suffix>``. ``categories`` (``{id, name}`` dicts)
    fix the class order: index i is ``categories[i]``; 255 and the values of
    ``ignored_ids`` are ignore, label values of other ids are an error.
    """

    def __init__(
        self,
        images_dir: Path,
        labels_dir: Path,
        categories: Iterable[Mapping[str, Any]],
        name: str = "coco_stuff",
        image_suffix: str = ".jpg",
        ignored_ids: Iterable[int] = (),
    ):
        self.name = name
        self.images_dir = Path(images_dir)
        self.labels_dir = Path(labels_dir)
        categories = list(categories)
        self.class_names = [str(category["name"]) for category in categories]
        self.category_ids = [int(category["id"]) for category in categories]
        self._table = coco_stuff_table(self.category_ids, ignored_ids)
        self._suffix = image_suffix
        if not self.labels_dir.is_dir():
            raise FileNotFoundError(f"{self.labels_dir}: COCO-Stuff labels folder not found")
        self._keys = sorted(path.stem for path in self.labels_dir.glob("*.png"))

    def keys(self) -> list[str]:
        return list(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def image_path(self, key: str) -> Path:
        return safe_join(self.images_dir, key + self._suffix)

    def load(self, key: str) -> Sample:
        image_path = self.image_path(key)
        label_path = safe_join(self.labels_dir, key + ".png")
        image = read_rgb(image_path)
        raw = read_label(label_path)
        check_same_size(raw, image, label_path, image_path)
        return Sample(key, image, apply_table(raw, self._table, label_path))


def coco_stuff171_labels(images_dir: Path, labels_dir: Path) -> CocoStuffLabels:
    """The real COCO-Stuff-171 training labels (ids 1..182 with gaps → indices 0..170)."""
    from pipeline.datasets.vocab import coco_stuff_categories

    return CocoStuffLabels(images_dir, labels_dir, coco_stuff_categories(), name="coco_stuff171")
