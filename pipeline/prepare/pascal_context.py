"""PASCAL-Context 59 and 459 from VOC2010 and the PASCAL-Context annotations.

Raw download, unpacked into one folder (``prepare.raw.pascal_context``)::

    VOC2010/JPEGImages/*.jpg, ImageSets/Main/val.txt   VOCtrainval_03-May-2010.tar
    VOC2010/trainval_merged.json                       PASCAL in Detail annotations (PC-59)
    VOC2010/trainval/*.mat, VOC2010/labels.txt         the full PASCAL-Context release, trainval.tar.gz (PC-459)

The validation split is the list file ``prepare.pascal_context_split`` (VOC2010's
``ImageSets/Main/val.txt``: the 5,105 images other projects ship as ``pascalcontext_val.txt``).

* PC-59: an image's semantic map is painted from its ``annos_segmentation`` entries of
  ``trainval_merged.json`` (COCO RLE, later entries over earlier ones, as the Detail API's
  ``getMask``); category ids are those of ``labels.txt``, and the 59 classes are
  :data:`PC59_CATEGORY_IDS` in label order. Unannotated pixels and other categories are ignore.
  Written as an 8-bit PNG, 255 = ignore.
* PC-459: ``LabelMap`` of ``trainval/<key>.mat``: value v in 1..459 is class v-1 (the
  ``labels.txt`` order, checked against ``pipeline/datasets/vocab/pc459.json``), 0 is
  ignore. Written as a uint16 TIFF, 65535 = ignore.

Both go under the prepared ``VOCdevkit/VOC2010`` (:data:`pipeline.datasets.benchmarks.LAYOUTS`),
with each validation image copied byte for byte to ``JPEGImages/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from pycocotools import mask as mask_utils

from core.io import atomic_write_bytes, read_json, safe_join
from pipeline.datasets.benchmarks import LAYOUTS
from pipeline.datasets.vocab import class_names
from pipeline.prepare.checks import checked_pair, copy_file, load_image, read_split, require_image, require_same_size
from pipeline.prepare.config import ConvertOptions
from pipeline.prepare.label_maps import IGNORE, INVALID, classes_row, encode_png, encode_tiff16, to_stored, value_table
from pipeline.prepare.records import REASON_OUT_OF_RANGE, REASON_SIZE_MISMATCH, REASON_UNREADABLE, Item, Rejected

PC59, PC459 = "pc59", "pc459"
DETAIL_NAME = "trainval_merged.json"
LABELS_NAME = "labels.txt"
MATS_DIR = "trainval"
#: The ``labels.txt`` category id of each PC-59 class, in the label order of
#: ``pipeline/datasets/vocab/pc59.json`` (the Detail API's evaluation order).
PC59_CATEGORY_IDS = (
    2,
    23,
    25,
    31,
    34,
    45,
    59,
    65,
    72,
    98,
    397,
    113,
    207,
    258,
    284,
    308,
    347,
    368,
    416,
    427,
    9,
    18,
    22,
    33,
    44,
    46,
    68,
    80,
    85,
    104,
    115,
    144,
    158,
    159,
    162,
    187,
    189,
    220,
    232,
    259,
    260,
    105,
    296,
    355,
    295,
    324,
    326,
    349,
    354,
    360,
    366,
    19,
    415,
    420,
    424,
    440,
    445,
    454,
    458,
)
PC459_CLASSES = 459


def normalise(name: str) -> str:
    """A class name for comparison: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _names_match(theirs: str, ours: str) -> bool:
    return normalise(theirs) in {normalise(part) for part in ours.split(",")}


def read_labels_txt(path: Path) -> dict[int, str]:
    """``labels.txt`` (``"<id>: <name>"`` per line), checked against our 459 class names in order."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: PASCAL-Context class list not found (part of trainval.tar.gz)")
    labels: dict[int, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"\s*(\d+)\s*:\s*(.+?)\s*", line)
        if not match:
            raise ValueError(f"{path}: line {number} is not '<id>: <name>': {line!r}")
        labels[int(match.group(1))] = match.group(2)
    if sorted(labels) != list(range(1, PC459_CLASSES + 1)):
        raise ValueError(f"{path}: expected ids 1..{PC459_CLASSES}, got {len(labels)} ids")
    ours = class_names(PC459)
    wrong = [
        f"{i}: {labels[i]!r} vs {ours[i - 1]!r}" for i in sorted(labels) if not _names_match(labels[i], ours[i - 1])
    ]
    if wrong:
        raise ValueError(f"{path}: class names differ from pipeline/datasets/vocab/pc459.json: {wrong[:10]}")
    return labels


def _segmentation_key(entry: Any, where: str, path: Path) -> None:
    if (
        not isinstance(entry, dict)
        or "image_id" not in entry
        or "category_id" not in entry
        or "segmentation" not in entry
    ):
        raise ValueError(f"{path}: {where} lacks image_id, category_id or segmentation")


def read_detail(path: Path, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """For each of ``keys`` that ``trainval_merged.json`` annotates: ``{height, width, segments}``,
    ``segments`` being ``[category id, class index (or -1 ignore, -2 unknown), segmentation]`` in
    file order. The file's categories must name the 59 classes as we do."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: PASCAL in Detail annotations not found (trainval_merged.json)")
    data = read_json(path)
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annos_segmentation", "categories")
    ):
        raise ValueError(f"{path}: expected lists 'images', 'annos_segmentation' and 'categories'")
    categories: dict[int, str] = {}
    for position, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or not isinstance(category.get("category_id"), int):
            raise ValueError(f"{path}: categories[{position}] lacks an integer category_id")
        categories[category["category_id"]] = str(category.get("name", ""))
    ours = class_names(PC59)
    wrong = [
        f"{cid}: {categories.get(cid)!r} vs {name!r}"
        for cid, name in zip(PC59_CATEGORY_IDS, ours)
        if cid not in categories or not _names_match(categories[cid], name)
    ]
    if wrong:
        raise ValueError(f"{path}: categories differ from pipeline/datasets/vocab/pc59.json: {wrong[:10]}")
    index_of = {cid: index for index, cid in enumerate(PC59_CATEGORY_IDS)}

    wanted = set(keys)
    by_id: dict[int, str] = {}
    annotated: dict[str, dict[str, Any]] = {}
    for position, image in enumerate(data["images"]):
        fields_ok = (
            isinstance(image, dict)
            and isinstance(image.get("file_name"), str)
            and all(isinstance(image.get(k), int) for k in ("image_id", "height", "width"))
        )
        if not fields_ok:
            raise ValueError(f"{path}: images[{position}] lacks image_id, file_name, height or width")
        key = Path(image["file_name"]).stem
        if key in wanted:
            if key in annotated:
                raise ValueError(f"{path}: image {key} is listed twice")
            by_id[image["image_id"]] = key
            annotated[key] = {"height": image["height"], "width": image["width"], "segments": []}
    for position, segment in enumerate(data["annos_segmentation"]):
        _segmentation_key(segment, f"annos_segmentation[{position}]", path)
        segment_key = by_id.get(segment["image_id"])
        if segment_key is not None:
            category_id = int(segment["category_id"])
            index = index_of.get(category_id, IGNORE if category_id in categories else INVALID)
            annotated[segment_key]["segments"].append([category_id, index, segment["segmentation"]])
    return annotated


def list_items(root: Path, benchmarks: Iterable[str], split: str) -> list[Item]:
    """The items of ``pc59`` and/or ``pc459``: one per key of the split list, sorted by (benchmark, key)."""
    benchmarks = sorted(set(benchmarks))
    keys = read_split(safe_join(root, split))
    items: list[Item] = []
    if PC459 in benchmarks:
        read_labels_txt(root / LABELS_NAME)
        for key in keys:
            image, label = f"JPEGImages/{key}.jpg", f"{MATS_DIR}/{key}.mat"
            items.append(Item(PC459, key, str(safe_join(root, image)), str(safe_join(root, label)), image, label))
    if PC59 in benchmarks:
        detail = read_detail(root / DETAIL_NAME, keys)
        for key in keys:
            image = f"JPEGImages/{key}.jpg"
            extra = {"annotated": key in detail, **detail.get(key, {})}
            items.append(
                Item(
                    PC59,
                    key,
                    str(safe_join(root, image)),
                    str(root / DETAIL_NAME),
                    image,
                    f"{DETAIL_NAME}#{key}",
                    extra,
                )
            )
    return sorted(items, key=lambda item: (item.benchmark, item.key))


def _decode(segmentation: Any, height: int, width: int, where: str) -> np.ndarray:
    """A Detail segmentation (COCO RLE, compressed or not, or polygons) as a bool mask."""
    try:
        if isinstance(segmentation, dict):
            size = [int(v) for v in segmentation.get("size", [])]
            if size != [height, width]:
                raise Rejected(
                    REASON_SIZE_MISMATCH, f"{where}: mask size {size} differs from the image's {[height, width]}"
                )
            counts = segmentation["counts"]
            rle = (
                mask_utils.frPyObjects(segmentation, height, width)
                if isinstance(counts, list)
                else {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
            )
        else:
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        return mask_utils.decode(rle).astype(bool)
    except Rejected:
        raise
    except Exception as exc:  # pycocotools raises bare Exceptions for malformed input
        raise Rejected(REASON_UNREADABLE, f"{where}: undecodable segmentation ({exc})") from None


def convert_pc59(item: Item, out: Path, options: ConvertOptions) -> dict[str, Any]:
    """Paint one image's Detail segments into the PC-59 PNG under ``out`` (the prepared ``VOC2010``); its row."""
    image_path = require_image(item, label_exists=bool(item.extra.get("annotated")))
    height, width = int(item.extra["height"]), int(item.extra["width"])
    image = load_image(image_path)
    require_same_size((height, width), image, item)
    classes = np.full((height, width), IGNORE, dtype=np.int32)
    painted = np.zeros((height, width), dtype=np.int32)
    for category_id, index, segmentation in item.extra["segments"]:
        mask = _decode(segmentation, height, width, item.label_name or item.key)
        classes[mask] = index
        painted[mask] = category_id
    unknown = classes == INVALID
    if unknown.any():
        raise Rejected(
            REASON_OUT_OF_RANGE,
            f"{item.label_name}: category ids {sorted(set(painted[unknown].tolist()))} "
            f"are not among the file's categories",
        )
    layout = LAYOUTS[PC59]
    copy_file(image_path, out / layout.images / (item.key + layout.image_suffix))
    atomic_write_bytes(
        out / layout.labels / (item.key + layout.label_suffix), encode_png(to_stored(classes, 255, np.uint8))
    )
    return classes_row(item, classes)


def read_label_map(path: str) -> np.ndarray:
    """``LabelMap`` of a PASCAL-Context ``.mat`` file as integers."""
    try:
        content = scipy.io.loadmat(path)
    except (
        Exception
    ) as exc:  # scipy raises MatReadError, ValueError, NotImplementedError (v7.3 files) and more: one reject
        raise Rejected(REASON_UNREADABLE, f"{path}: unreadable .mat file ({exc})") from None
    label = content.get("LabelMap")
    if not isinstance(label, np.ndarray) or label.ndim != 2 or label.dtype.kind not in "uif":
        raise Rejected(REASON_UNREADABLE, f"{path}: no 2-D numeric 'LabelMap' array")
    if label.dtype.kind == "f" and not np.array_equal(label, np.round(label)):
        raise Rejected(REASON_UNREADABLE, f"{path}: 'LabelMap' holds non-integer values")
    return label.astype(np.int64)


_PC459_TABLE = value_table(
    {0: IGNORE, **{value: value - 1 for value in range(1, PC459_CLASSES + 1)}}, PC459_CLASSES + 1
)


def convert_pc459(item: Item, out: Path, options: ConvertOptions) -> dict[str, Any]:
    """Convert one ``.mat`` label map to the PC-459 TIFF under ``out`` (the prepared ``VOC2010``); its row."""
    pair = checked_pair(item, read_label_map, _PC459_TABLE)
    layout = LAYOUTS[PC459]
    copy_file(pair.image, out / layout.images / (item.key + layout.image_suffix))
    atomic_write_bytes(
        out / layout.labels / (item.key + layout.label_suffix), encode_tiff16(to_stored(pair.classes, 65535, np.uint16))
    )
    return classes_row(item, pair.classes)
