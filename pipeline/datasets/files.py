"""Reading image and label files with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


def _open(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable {what} ({exc})") from None
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as an ``H×W×3 uint8`` RGB array."""
    image = _open(Path(path), "image")
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def read_label(path: str | Path) -> np.ndarray:
    """Read a label file (8-bit PNG, palette PNG, uint16 TIFF) as its raw ``H×W`` values.

    Palette PNGs give their indices, not colours; 16-bit files give values up to 65535.
    """
    path = Path(path)
    image = _open(path, "label")
    if image.mode in ("L", "P", "I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image)
    else:
        raise ValueError(f"{path}: label must be single-channel (mode L, P, I;16 or I), got mode {image.mode}")
    if values.ndim != 2:
        raise ValueError(f"{path}: label must be a 2-D array, got shape {values.shape}")
    return values.astype(np.int64)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: unreadable image ({exc})") from None
    return height, width


def check_same_size(label: np.ndarray, image: np.ndarray, label_path: Path, image_path: Path) -> None:
    """Refuse a label whose ``H×W`` differs from its image's."""
    if label.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"{label_path}: label size {label.shape[1]}x{label.shape[0]} differs from "
            f"image {image_path} size {image.shape[1]}x{image.shape[0]}"
        )
