"""The checks every converter starts with, each failing as a :class:`pipeline.prepare.records.Rejected`."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core.io import atomic_write_bytes
from pipeline.datasets.files import read_label, read_rgb
from pipeline.prepare.label_maps import to_classes
from pipeline.prepare.records import (
    REASON_IMAGE_WITHOUT_LABEL,
    REASON_LABEL_WITHOUT_IMAGE,
    REASON_MISSING,
    REASON_SIZE_MISMATCH,
    REASON_UNREADABLE,
    Item,
    Rejected,
)


def _exists(path: str | None) -> bool:
    return path is not None and Path(path).is_file()


def require_pair(item: Item) -> tuple[str, str]:
    """The paths of ``item``'s image and label, after checking that both files exist."""
    _require(item, _exists(item.label))
    assert item.image is not None and item.label is not None  # both exist
    return item.image, item.label


def require_image(item: Item, label_exists: bool) -> str:
    """The path of ``item``'s image, after checking that it exists and that its label does (``label_exists``:
    for labels that are not files of their own, such as a JSON entry)."""
    _require(item, label_exists)
    assert item.image is not None  # it exists
    return item.image


def _require(item: Item, has_label: bool) -> None:
    has_image = _exists(item.image)
    if has_image and has_label:
        return
    image, label = item.image_name or item.key, item.label_name or item.key
    if not has_image and not has_label:
        raise Rejected(REASON_MISSING, f"neither the image {image} nor its label {label} exists")
    if not has_label:
        raise Rejected(REASON_IMAGE_WITHOUT_LABEL, f"image {image} has no label {label}")
    raise Rejected(REASON_LABEL_WITHOUT_IMAGE, f"label {label} has no image {image}")


def load_image(path: str) -> np.ndarray:
    """The decoded ``H×W×3 uint8`` image (the whole file is decoded, so a truncated one is caught)."""
    try:
        return read_rgb(path)
    except (OSError, ValueError) as exc:
        raise Rejected(REASON_UNREADABLE, str(exc)) from None


def load_label(path: str) -> np.ndarray:
    """The raw values of a single-channel label file (PNG, palette PNG, TIFF)."""
    try:
        return read_label(path)
    except (OSError, ValueError) as exc:
        raise Rejected(REASON_UNREADABLE, str(exc)) from None


def require_same_size(label_shape: tuple[int, ...], image: np.ndarray, item: Item) -> None:
    """The label is as large as its image."""
    if tuple(label_shape[:2]) != image.shape[:2]:
        raise Rejected(
            REASON_SIZE_MISMATCH,
            f"label {item.label_name} is {label_shape[1]}x{label_shape[0]}, "
            f"image {item.image_name} is {image.shape[1]}x{image.shape[0]}",
        )


class CheckedPair(NamedTuple):
    image: str
    label: str
    classes: np.ndarray  # the label's class indices


def checked_pair(item: Item, read_raw: Callable[[str], np.ndarray], table: np.ndarray) -> CheckedPair:
    """A pair that passes the checks, in order: both files exist, the label (read by ``read_raw``) holds
    only values ``table`` maps, the image decodes and is as large."""
    image_path, label_path = require_pair(item)
    raw = read_raw(label_path)
    classes = to_classes(raw, table, item.label_name or item.key)
    image = load_image(image_path)
    require_same_size(raw.shape, image, item)
    return CheckedPair(image_path, label_path, classes)


def copy_file(source: str, target: Path) -> None:
    """Copy a file's bytes unchanged (atomically: a retried worker rewrites the same bytes)."""
    atomic_write_bytes(target, Path(source).read_bytes())


def read_split(path: Path) -> list[str]:
    """The image keys of a split list file (one per line), sorted and unique; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split list not found")
    keys = sorted({line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()})
    bad = [key for key in keys if not re.fullmatch(r"[A-Za-z0-9_.-]+", key) or key.startswith(".")]
    if bad:
        raise ValueError(f"{path}: entries {bad[:5]} are not image keys")
    if not keys:
        raise ValueError(f"{path}: the split list is empty")
    return keys
