"""A benchmark's images as the demo's examples: each with the class list of its ground truth."""

from __future__ import annotations

import numpy as np

from pipeline.datasets.segmentation import SegmentationDataset
from pipeline.demo.inputs import InputError, class_list_text


class Examples:
    """The images of one benchmark (``world.benchmark("demo")``), by key."""

    def __init__(self, dataset: SegmentationDataset):
        self.dataset = dataset
        self._keys = dataset.keys()

    @property
    def name(self) -> str:
        return self.dataset.name

    def keys(self) -> list[str]:
        return list(self._keys)

    def load(self, key: str) -> tuple[np.ndarray, str]:
        """``(image, classes)``: the image ``H×W×3 uint8`` and the page's class list of the classes its ground
        truth holds, in the benchmark's order (``"sky, grass|lawn, zebra"``)."""
        if key not in self._keys:
            raise InputError(f"{key!r} is not an image of the benchmark {self.dataset.name!r}")
        sample = self.dataset.load(key)
        present = sorted(int(i) for i in np.unique(sample.label) if i >= 0)
        return sample.image, class_list_text([self.dataset.class_names[i] for i in present])
