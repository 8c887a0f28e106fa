"""The one interface every semantic-segmentation dataset reader offers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

IGNORE = -1


@dataclass(frozen=True)
class Sample:
    """One image with its label map.

    ``image`` is ``H×W×3 uint8`` RGB; ``label`` is ``H×W int32`` of 0-based
    indices into the dataset's ``class_names``, ``-1`` = ignore.
    """

    key: str
    image: np.ndarray
    label: np.ndarray


@runtime_checkable
class SegmentationDataset(Protocol):
    """A finite, ordered set of labelled images. ``keys()`` is sorted and stable."""

    name: str
    class_names: list[str]

    def keys(self) -> list[str]: ...

    def __len__(self) -> int: ...

    def load(self, key: str) -> Sample: ...


def lookup_table(values_to_index: dict[int, int], size: int) -> np.ndarray:
    """A ``size``-entry int32 table mapping raw label values to indices, ``-2`` for unexpected values."""
    table = np.full(size, -2, dtype=np.int32)
    for value, index in values_to_index.items():
        table[value] = index
    return table


def apply_table(raw: np.ndarray, table: np.ndarray, path: object) -> np.ndarray:
    """Map raw label values through ``table``; values outside it or marked ``-2`` are an error naming ``path``."""
    if raw.size and (raw.min() < 0 or raw.max() >= len(table)):
        bad = int(raw.max()) if raw.max() >= len(table) else int(raw.min())
        raise ValueError(f"{path}: unexpected label value {bad}")
    mapped = table[raw]
    if (mapped == -2).any():
        bad_values = sorted({int(v) for v in np.unique(raw[mapped == -2])})
        raise ValueError(f"{path}: unexpected label values {bad_values[:10]}")
    return mapped.astype(np.int32)
