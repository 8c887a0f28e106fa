"""ADE20K-847 from ``ADE20K_2021_17_01``: its index pickle and the R/G-encoded ``*_seg.png`` of each image.

Raw download (https://ade20k.csail.mit.edu/, registration)::

    ADE20K_2021_17_01/index_ade20k.pkl                  {"filename": [...], "folder": [...], "objectnames": [...], ...}
    ADE20K_2021_17_01/images/ADE/validation/<scene>/ADE_val_00000001.jpg, ..._seg.png

The index lists every image with its folder (which starts with the dataset's own folder name);
the validation images are those whose file name's second ``_`` field is ``val``. A pixel's object
class is ``R / 10 * 256 + G`` of its ``*_seg.png`` (0 = unlabelled), an index into
``objectnames`` counted from 1. The 847 classes are detectron2's frequency-filtered list
(``ade20k_full_ids.json``: the class id of each, in label order; names as in
``pipeline/datasets/vocab/ade847.json``); every other class is ignore.

Prepared (:data:`pipeline.datasets.benchmarks.LAYOUTS` ``ade847``): the image, resized as
detectron2 does (a shorter side above ``ade847_max_short_side`` becomes it: bilinear for the
image, nearest for the label) or else copied byte for byte, and a uint16 TIFF of the class
indices, 65535 = ignore.
"""

from __future__ import annotations

import functools
import json
import pickle
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from core.io import UnsafePathError, atomic_write_bytes, safe_join
from pipeline.datasets.benchmarks import LAYOUTS
from pipeline.prepare.checks import copy_file, load_image, require_pair, require_same_size
from pipeline.prepare.config import ConvertOptions
from pipeline.prepare.label_maps import (
    IGNORE,
    classes_row,
    decode_ade_rgb,
    encode_jpeg,
    encode_tiff16,
    resize_image,
    resize_nearest,
    short_side_size,
    to_classes,
    to_stored,
)
from pipeline.prepare.records import Item

BENCHMARK = "ade847"
FOLDER_NAME = "ADE20K_2021_17_01"
INDEX_NAME = "index_ade20k.pkl"
IDS_FILE = Path(__file__).resolve().parent / "ade20k_full_ids.json"
IGNORE_VALUE = 65535
SEG_SUFFIX = "_seg.png"
_INDEX_KEYS = ("filename", "folder", "objectnames")
# The index holds lists, dicts and NumPy arrays: nothing else is unpickled.
_PICKLE_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
}


@functools.lru_cache(maxsize=1)
def category_ids() -> tuple[int, ...]:
    """The ADE20K object class id of each of the 847 classes, in label order."""
    pairs = json.loads(IDS_FILE.read_text(encoding="utf-8"))
    return tuple(int(class_id) for class_id, _ in pairs)


class _IndexUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only lists, dicts and NumPy arrays)")
        return super().find_class(module, name)


def read_index(path: Path) -> dict[str, list[str]]:
    """``filename``, ``folder`` and ``objectnames`` of ADE20K's index pickle, checked (errors name the file).

    The pickle is read with an unpickler that builds only plain containers and NumPy arrays, so a
    doctored file cannot run code."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ADE20K index not found (part of the ADE20K_2021_17_01 download)")
    try:
        with open(path, "rb") as handle:
            index = _IndexUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable ADE20K index ({exc})") from None
    if not isinstance(index, dict):
        raise ValueError(f"{path}: expected a dict, got {type(index).__name__}")
    missing = [key for key in _INDEX_KEYS if key not in index]
    if missing:
        raise ValueError(f"{path}: index lacks {missing}")
    columns = {key: [str(value) for value in list(index[key])] for key in _INDEX_KEYS}
    if len(columns["filename"]) != len(columns["folder"]):
        raise ValueError(f"{path}: {len(columns['filename'])} file names but {len(columns['folder'])} folders")
    return columns


def is_validation(file_name: str) -> bool:
    """ADE's split rule: ``ADE_val_00000001.jpg`` is a validation image."""
    parts = file_name.split("_")
    return len(parts) > 1 and parts[1] == "val"


def _relative_folder(folder: str, root: Path) -> str:
    parts = PurePosixPath(folder.replace("\\", "/")).parts
    if parts and parts[0] in (root.name, FOLDER_NAME):
        parts = parts[1:]
    return "/".join(parts)


def list_items(root: Path) -> list[Item]:
    """One item per validation image of the index, plus one per validation ``*_seg.png`` under
    ``images/`` that the index does not list (a label without an image). Sorted by key."""
    index_path = root / INDEX_NAME
    index = read_index(index_path)
    objects = len(index["objectnames"])
    items: dict[str, Item] = {}
    for position, (file_name, folder) in enumerate(zip(index["filename"], index["folder"])):
        if not is_validation(file_name):
            continue
        if not file_name.endswith(".jpg"):
            raise ValueError(f"{index_path}: entry {position} names {file_name!r}, not a .jpg image")
        relative = f"{_relative_folder(folder, root)}/{file_name}".lstrip("/")
        label_relative = relative[: -len(".jpg")] + SEG_SUFFIX
        try:
            image, label = safe_join(root, relative), safe_join(root, label_relative)
        except UnsafePathError as exc:
            raise UnsafePathError(f"{index_path}: entry {position}: {exc}") from None
        key = file_name[: -len(".jpg")]
        if key in items:
            raise ValueError(f"{index_path}: validation image {key} is listed twice")
        items[key] = Item(BENCHMARK, key, str(image), str(label), relative, label_relative, {"objects": objects})
    images_dir = root / "images"
    if images_dir.is_dir():
        for label in sorted(images_dir.rglob("*" + SEG_SUFFIX)):
            key = label.name[: -len(SEG_SUFFIX)]
            if is_validation(label.name) and key not in items:
                relative = label.relative_to(root).as_posix()
                items[key] = Item(BENCHMARK, key, None, str(label), None, relative, {"objects": objects})
    return [items[key] for key in sorted(items)]


@functools.lru_cache(maxsize=4)
def _table(objects: int) -> np.ndarray:
    """Object class id (0..objects) → class index; 0 and the classes outside the 847 are ignore."""
    table = np.full(objects + 1, IGNORE, dtype=np.int32)
    for index, class_id in enumerate(category_ids()):
        if class_id <= objects:
            table[class_id] = index
    return table


def convert(item: Item, out: Path, options: ConvertOptions) -> dict[str, Any]:
    """Prepare one validation image under ``out`` (the prepared ``ADE20K_2021_17_01`` folder); its row."""
    image_path, label_path = require_pair(item)
    seg = load_image(label_path)
    classes = to_classes(decode_ade_rgb(seg), _table(int(item.extra["objects"])), item.label_name or item.key)
    image = load_image(image_path)
    require_same_size(seg.shape, image, item)
    layout = LAYOUTS[BENCHMARK]
    out_image = out / layout.images / (item.key + layout.image_suffix)
    height, width = short_side_size(image.shape[0], image.shape[1], options.ade847_max_short_side)
    if (height, width) != image.shape[:2]:
        atomic_write_bytes(out_image, encode_jpeg(resize_image(image, height, width), options.jpeg_quality))
        classes = resize_nearest(classes, height, width)
    else:
        copy_file(image_path, out_image)
    stored = to_stored(classes, IGNORE_VALUE, np.uint16)
    atomic_write_bytes(out / layout.labels / (item.key + layout.label_suffix), encode_tiff16(stored))
    return classes_row(item, classes)
