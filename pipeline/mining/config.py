"""The mining job's thresholds and filters (params ``mine``), validated once in the driver.

The settings travel to the workers inside the DoFn, so they are a small frozen
dataclass of plain values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from model.precision import INFERENCE_PRECISIONS, Precision


@dataclass(frozen=True)
class MiningConfig:
    """How proposals become regions and which (noun, region) matches become pairs.

    Regions (:mod:`pipeline.mining.regions`): a proposal's mask is its mask
    probability ``> mask_threshold``; it is usable when its objectness score is
    at least ``min_proposal_score`` and its area at least ``min_area_pixels``
    and at least ``min_area_fraction`` of the image; usable masks whose IoU with
    a better-scored usable mask is at least ``nms_iou`` are dropped as duplicates
    (``None``: keep them all); of the rest, the ``max_proposals`` best-scored are kept
    (``None``: all).

    Pairs (:mod:`pipeline.mining.matching`): a noun's best region becomes a pair
    when its cosine similarity is at least ``min_similarity``, its softmax over
    the image's nouns at least ``min_softmax`` and its margin over the noun's
    runner-up region at least ``min_margin`` (each ``None``: no filter; with
    ``min_margin`` set, a noun of an image with a single region has no margin
    and is dropped).

    Images: at most ``max_pixels`` pixels (checked from the header, before
    decoding). Crops: each region's box is enlarged by ``expand_ratio``
    (:func:`model.crops.expand_boxes`). Compute: ``images_per_batch`` images go
    through the proposer together, each worker uses ``threads`` torch threads
    on ``device``, with ``precision`` ``fp32`` or ``bf16`` (autocast around the proposer and
    CLIP; similarities, softmaxes and mask IoUs stay float32).
    """

    mask_threshold: float = 0.4
    min_proposal_score: float = 0.0
    min_area_pixels: int = 16
    min_area_fraction: float = 0.0
    nms_iou: float | None = 0.9
    min_similarity: float | None = None
    min_softmax: float | None = None
    min_margin: float | None = None
    expand_ratio: float = 0.0
    max_pixels: int = 4_000_000
    images_per_batch: int = 8
    threads: int = 1
    precision: Precision = "fp32"
    max_proposals: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        checks = [*self._filter_checks(), *self._limit_checks()]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("mining settings: " + "; ".join(problems))

    def _filter_checks(self) -> list[tuple[bool, str]]:
        """(valid, message) of each threshold that turns proposals into regions and matches into pairs."""
        return [
            (
                _number(self.mask_threshold) and 0 <= self.mask_threshold < 1,
                f"mask_threshold must lie in [0, 1), got {self.mask_threshold!r}",
            ),
            (
                _number(self.min_proposal_score) and 0 <= self.min_proposal_score <= 1,
                f"min_proposal_score must lie in [0, 1], got {self.min_proposal_score!r}",
            ),
            (
                _integer(self.min_area_pixels) and self.min_area_pixels >= 1,
                f"min_area_pixels must be an integer >= 1, got {self.min_area_pixels!r}",
            ),
            (
                _number(self.min_area_fraction) and 0 <= self.min_area_fraction < 1,
                f"min_area_fraction must lie in [0, 1), got {self.min_area_fraction!r}",
            ),
            (
                self.nms_iou is None or (_number(self.nms_iou) and 0 < self.nms_iou <= 1),
                f"nms_iou must be null or lie in (0, 1], got {self.nms_iou!r}",
            ),
            (
                self.min_similarity is None or (_number(self.min_similarity) and -1 <= self.min_similarity <= 1),
                f"min_similarity must be null or a cosine in [-1, 1], got {self.min_similarity!r}",
            ),
            (
                self.min_softmax is None or (_number(self.min_softmax) and 0 <= self.min_softmax <= 1),
                f"min_softmax must be null or lie in [0, 1], got {self.min_softmax!r}",
            ),
            (
                self.min_margin is None or (_number(self.min_margin) and 0 <= self.min_margin <= 2),
                f"min_margin must be null or lie in [0, 2], got {self.min_margin!r}",
            ),
        ]

    def _limit_checks(self) -> list[tuple[bool, str]]:
        """(valid, message) of the crop, image, batch, thread, precision, proposal-count and device settings."""
        return [
            (
                _number(self.expand_ratio) and self.expand_ratio >= 0,
                f"expand_ratio must be >= 0, got {self.expand_ratio!r}",
            ),
            (
                _integer(self.max_pixels) and self.max_pixels >= 1,
                f"max_pixels must be a positive integer, got {self.max_pixels!r}",
            ),
            (
                _integer(self.images_per_batch) and self.images_per_batch >= 1,
                f"images_per_batch must be a positive integer, got {self.images_per_batch!r}",
            ),
            (_integer(self.threads) and self.threads >= 1, f"threads must be a positive integer, got {self.threads!r}"),
            (
                self.precision in INFERENCE_PRECISIONS,
                f"precision must be one of {', '.join(INFERENCE_PRECISIONS)}, got {self.precision!r}",
            ),
            (
                self.max_proposals is None or (_integer(self.max_proposals) and self.max_proposals >= 1),
                f"max_proposals must be null or an integer >= 1, got {self.max_proposals!r}",
            ),
            (isinstance(self.device, str) and bool(self.device), f"device must be a name, got {self.device!r}"),
        ]

    def min_area(self, height: int, width: int) -> int:
        """The smallest usable region area in pixels for an ``height × width`` image."""
        return max(self.min_area_pixels, math.ceil(self.min_area_fraction * height * width))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
