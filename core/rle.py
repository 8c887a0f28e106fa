"""Masks at rest: COCO RLE with ``counts`` as an ASCII string."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def decode_rle(rle: dict) -> np.ndarray:
    """A COCO RLE (``counts`` as an ASCII string) to a bool ``[h, w]`` mask."""
    counts = rle["counts"]
    coded = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(coded).astype(bool)


def encode_rle(mask: np.ndarray) -> dict:
    """A bool ``[h, w]`` mask to a COCO RLE with ``counts`` as an ASCII string."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}
