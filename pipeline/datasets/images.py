"""Decoding many images into one fixed-size array, the form the trainers keep in memory.

Single-file reading with clear errors lives in :mod:`pipeline.datasets.files`."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


def load_resized(paths: Sequence[str | Path], size: int, *, threads: int = 2) -> np.ndarray:
    """Decode every image and resize it (bicubic) to ``size×size``: ``[N, size, size, 3]`` uint8."""

    def one(path: str | Path) -> np.ndarray:
        with Image.open(path) as opened:
            img = opened.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BICUBIC)
            return np.asarray(img)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        arrays = list(pool.map(one, paths))
    if not arrays:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack(arrays)
