"""The ``prepare`` params section (and the ``data`` keys the stage reads), validated.

::

    prepare:
      raw: {ade847: DIR, ade150: DIR, pascal_context: DIR, voc20: DIR}   # the official downloads
      pascal_context_split: ImageSets/Main/val.txt    # under raw.pascal_context
      ade847_max_short_side: 512                       # detectron2's resize (null: keep the size)
      jpeg_quality: 95                                 # resized images only; others are copied byte for byte
      coco_stuff: true                                 # check that COCO-Stuff's labels pair one to one with the images
      allow_partial: false                             # accept fewer images than expected (said in the metrics)
      num_shards: 4
      runner: {runner: direct, workers: 2}

From ``data``: ``source`` (only ``coco`` prepares anything), ``benchmarks`` (which to prepare)
and ``real.coco_root``/``real.images``/``real.labels`` (COCO-Stuff's training images and labels).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.params import check_keys

#: The raw download each benchmark is prepared from (a key of ``prepare.raw``).
RAW_OF = {"ade847": "ade847", "ade150": "ade150", "pc59": "pascal_context", "pc459": "pascal_context", "voc20": "voc20"}
RAW_KEYS = ("ade150", "ade847", "pascal_context", "voc20")
PREPARE_KEYS = (
    "raw",
    "pascal_context_split",
    "ade847_max_short_side",
    "jpeg_quality",
    "coco_stuff",
    "allow_partial",
    "num_shards",
    "runner",
)
COCO_STUFF = "coco_stuff171"


@dataclass(frozen=True)
class ConvertOptions:
    """What a converter needs besides its item (shipped to every Beam worker)."""

    ade847_max_short_side: int | None = 512
    jpeg_quality: int = 95


@dataclass(frozen=True)
class PrepareConfig:
    """The validated ``prepare`` section plus the ``data`` keys above."""

    source: str
    benchmarks: tuple[str, ...]
    raw: dict[str, Path] = field(default_factory=dict)
    pascal_context_split: str = "ImageSets/Main/val.txt"
    options: ConvertOptions = ConvertOptions()
    coco_stuff: bool = True
    coco_images: Path | None = None
    coco_labels: Path | None = None
    allow_partial: bool = False
    num_shards: int = 4
    runner: dict[str, Any] = field(default_factory=lambda: {"runner": "direct"})

    @property
    def active(self) -> bool:
        """Whether there is anything to prepare (``data.source: coco``)."""
        return self.source == "coco"

    def prepared_sets(self) -> list[str]:
        """The benchmarks to prepare, then COCO-Stuff when checked, in a fixed order."""
        sets = sorted(set(self.benchmarks))
        return sets + ([COCO_STUFF] if self.coco_stuff else [])

    @classmethod
    def from_params(cls, prepare: Mapping[str, Any], data: Mapping[str, Any]) -> PrepareConfig:
        """Build from the ``prepare`` and ``data`` sections; unknown keys and bad values raise
        ``ValueError`` naming the key."""
        if not isinstance(prepare, Mapping):
            raise ValueError("params 'prepare' must be a mapping")
        check_keys(prepare, PREPARE_KEYS, "prepare")
        source, benchmarks = _data_source(data)
        raw = _raw_downloads(prepare)
        runner = prepare.get("runner", {"runner": "direct"})
        if not isinstance(runner, Mapping):
            raise ValueError("prepare.runner must be a mapping (runner, workers, dask_address, options)")
        options = _convert_options(prepare)
        num_shards = prepare.get("num_shards", 4)
        if not _is_int(num_shards) or num_shards < 1:
            raise ValueError(f"prepare.num_shards must be a positive integer, got {num_shards!r}")
        split = prepare.get("pascal_context_split", "ImageSets/Main/val.txt")
        if not isinstance(split, str) or not split:
            raise ValueError(f"prepare.pascal_context_split must be a path under raw.pascal_context, got {split!r}")
        flags = {key: _flag(prepare, key, default) for key, default in (("coco_stuff", True), ("allow_partial", False))}
        coco_images = coco_labels = None
        if source == "coco":
            unknown = sorted(set(benchmarks) - set(RAW_OF))
            if unknown:
                raise ValueError(f"data.benchmarks: {unknown} cannot be prepared; known: {sorted(RAW_OF)}")
            if flags["coco_stuff"]:
                coco_images, coco_labels = _coco_stuff_folders(data.get("real") or {})
        return cls(
            source=source,
            benchmarks=tuple(benchmarks),
            raw={str(key): Path(str(path)).expanduser().absolute() for key, path in sorted(raw.items()) if path},
            pascal_context_split=split,
            options=options,
            coco_stuff=flags["coco_stuff"],
            coco_images=coco_images,
            coco_labels=coco_labels,
            allow_partial=flags["allow_partial"],
            num_shards=num_shards,
            runner=dict(runner),
        )

    def raw_root(self, benchmark: str) -> Path:
        """The raw download folder of ``benchmark``; ``ValueError`` when ``prepare.raw`` does not name it."""
        key = RAW_OF[benchmark]
        if key not in self.raw:
            raise ValueError(f"prepare.raw.{key}: no folder for benchmark {benchmark} (data.benchmarks lists it)")
        return self.raw[key]


def _data_source(data: Mapping[str, Any]) -> tuple[str, list[str]]:
    """``data.source`` (``demo`` or ``coco``) and ``data.benchmarks`` (names), checked."""
    source = data.get("source")
    if source not in ("demo", "coco"):
        raise ValueError(f"data.source must be 'demo' or 'coco', got {source!r}")
    benchmarks = data.get("benchmarks") or []
    if not isinstance(benchmarks, list) or not all(isinstance(name, str) for name in benchmarks):
        raise ValueError(f"data.benchmarks: expected a list of benchmark names, got {benchmarks!r}")
    return source, benchmarks


def _raw_downloads(prepare: Mapping[str, Any]) -> Mapping[str, Any]:
    """``prepare.raw``, checked: download name → folder."""
    raw = prepare.get("raw") or {}
    if not isinstance(raw, Mapping):
        raise ValueError("prepare.raw: expected a mapping of download name to folder")
    check_keys(raw, RAW_KEYS, "prepare.raw")
    return raw


def _convert_options(prepare: Mapping[str, Any]) -> ConvertOptions:
    """``prepare.ade847_max_short_side`` and ``prepare.jpeg_quality``, checked."""
    max_side = prepare.get("ade847_max_short_side", 512)
    if max_side is not None and (not _is_int(max_side) or max_side < 1):
        raise ValueError(f"prepare.ade847_max_short_side must be a positive integer or null, got {max_side!r}")
    quality = prepare.get("jpeg_quality", 95)
    if not _is_int(quality) or not 1 <= quality <= 100:
        raise ValueError(f"prepare.jpeg_quality must be an integer in 1..100, got {quality!r}")
    return ConvertOptions(ade847_max_short_side=max_side, jpeg_quality=quality)


def _flag(prepare: Mapping[str, Any], key: str, default: bool) -> bool:
    """``prepare.<key>``, which must be a boolean."""
    value = prepare.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"prepare.{key} must be true or false, got {value!r}")
    return value


def _coco_stuff_folders(real: Mapping[str, Any]) -> tuple[Path, Path]:
    """COCO-Stuff's training images and labels (absolute) from ``data.real``."""
    missing = [key for key in ("coco_root", "images", "labels") if key not in real]
    if missing:
        raise ValueError(f"data.real: missing keys {missing} (prepare.coco_stuff checks COCO-Stuff)")
    coco_root = Path(str(real["coco_root"])).expanduser()
    return (coco_root / str(real["images"])).absolute(), (coco_root / str(real["labels"])).absolute()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
