"""Test doubles shared by several test modules (import as ``tests.doubles``)."""
from __future__ import annotations

from collections.abc import Iterable

from pipeline.datasets.segmentation import Sample


class MemoryDataset:
    """A :class:`~pipeline.datasets.segmentation.SegmentationDataset` over samples held in memory."""

    def __init__(self, name: str, class_names: Iterable[str], samples: Iterable[Sample]):
        self.name = name
        self.class_names = list(class_names)
        self._samples = {s.key: s for s in samples}

    def keys(self) -> list[str]:
        return sorted(self._samples)

    def __len__(self) -> int:
        return len(self._samples)

    def load(self, key: str) -> Sample:
        return self._samples[key]
