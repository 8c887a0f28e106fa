"""The demo world's parameters (params.yaml ``data`` + ``data.demo``), validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from core.params import check_keys


@dataclass(frozen=True)
class WorldConfig:
    """Everything that determines the demo world's bytes (``workers`` does not)."""

    seed: int = 0
    train_images: int = 2000
    benchmark_images: int = 200
    extra_benchmark_images: int = 100  # each of ade847, pc459, pc59, voc20 (demo has benchmark_images)
    val_images: int = 200  # the validation benchmark ``val`` (0: none)
    image_size: int = 128
    captions_per_image: int = 5
    unseen_fraction: float = 0.3
    preview_images: int = 8
    jpeg_quality: int = 90
    stuff_per_image: tuple[int, int] = (1, 3)
    things_per_image: tuple[int, int] = (1, 5)
    thing_scale: tuple[float, float] = (0.12, 0.5)
    min_visible: float = 0.01
    workers: int = 2

    def __post_init__(self) -> None:
        problems = []
        if self.train_images < 1 or self.benchmark_images < 1 or self.extra_benchmark_images < 1:
            problems.append("train_images, benchmark_images and extra_benchmark_images must be at least 1")
        if self.val_images < 0:
            problems.append(f"val_images must be at least 0, got {self.val_images}")
        if not 64 <= self.image_size <= 1024:
            problems.append(f"image_size must lie in 64..1024, got {self.image_size}")
        if self.captions_per_image < 1:
            problems.append("captions_per_image must be at least 1")
        if not 0 <= self.unseen_fraction < 1:
            problems.append(f"unseen_fraction must lie in [0, 1), got {self.unseen_fraction}")
        if not 1 <= self.jpeg_quality <= 100:
            problems.append(f"jpeg_quality must lie in 1..100, got {self.jpeg_quality}")
        if not 1 <= self.stuff_per_image[0] <= self.stuff_per_image[1] <= 3:
            problems.append(f"stuff_per_image must be [lo, hi] within 1..3, got {list(self.stuff_per_image)}")
        if not 1 <= self.things_per_image[0] <= self.things_per_image[1] <= 8:
            problems.append(f"things_per_image must be [lo, hi] within 1..8, got {list(self.things_per_image)}")
        if not 0.05 <= self.thing_scale[0] <= self.thing_scale[1] <= 1.0:
            problems.append(f"thing_scale must be [lo, hi] within 0.05..1, got {list(self.thing_scale)}")
        if not 0 <= self.min_visible < 0.2:
            problems.append(f"min_visible must lie in [0, 0.2), got {self.min_visible}")
        if self.workers < 1:
            problems.append(f"workers must be at least 1, got {self.workers}")
        if problems:
            raise ValueError("data.demo: " + "; ".join(problems))

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> WorldConfig:
        """Build from the ``data`` params section: ``seed`` and the ``demo`` subsection."""
        demo = dict(data.get("demo") or {})
        check_keys(demo, {f.name for f in fields(cls)} - {"seed"}, "data.demo")
        for key in ("stuff_per_image", "things_per_image", "thing_scale"):
            if key in demo:
                value = demo[key]
                if not isinstance(value, (list, tuple)) or len(value) != 2:
                    raise ValueError(f"data.demo.{key}: expected [lo, hi], got {value!r}")
                demo[key] = tuple(value)
        return cls(seed=int(data.get("seed", 0)), **demo)
