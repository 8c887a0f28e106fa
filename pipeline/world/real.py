"""``data.source: coco``: check the real COCO and benchmark folders and describe them in a manifest.

Nothing is copied: the manifest points at the validated absolute paths, and the
only files written next to it are ``classes.json`` (COCO-Stuff-171, seen or not as
``data.real.split`` says, see :mod:`pipeline.world.splits`) and ``world.json`` (counts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.params import check_keys
from pipeline.datasets.benchmarks import benchmark_names, missing_paths, open_benchmark
from pipeline.datasets.coco import read_coco_captions
from pipeline.datasets.vocab import coco_stuff_categories
from pipeline.world.splits import unseen_coco_names, voc_synonyms

REAL_KEYS = ("coco_root", "captions", "images", "labels", "benchmarks")
OPTIONAL_REAL_KEYS = ("split",)  # default "none": every class seen


class MissingDataError(FileNotFoundError):
    """Real data folders or files are missing; the message lists every one."""


@dataclass(frozen=True)
class RealPaths:
    captions: Path
    images: Path
    labels: Path
    benchmarks: dict[str, Path]


def real_paths(real: Mapping[str, Any]) -> RealPaths:
    """Resolve the ``data.real`` params (paths under ``coco_root`` unless absolute)."""
    check_keys(real, REAL_KEYS + OPTIONAL_REAL_KEYS, "data.real")
    missing_keys = [key for key in REAL_KEYS if key not in real]
    if missing_keys:
        raise ValueError(f"data.real: missing keys {missing_keys}")
    root = Path(str(real["coco_root"])).expanduser()
    benchmarks = real["benchmarks"] or {}
    if not isinstance(benchmarks, Mapping):
        raise ValueError("data.real.benchmarks: expected a mapping of benchmark name to root folder")
    return RealPaths(
        captions=(root / str(real["captions"])).absolute(),
        images=(root / str(real["images"])).absolute(),
        labels=(root / str(real["labels"])).absolute(),
        benchmarks={str(name): Path(str(path)).expanduser().absolute() for name, path in sorted(benchmarks.items())},
    )


def find_problems(paths: RealPaths, wanted_benchmarks: list[str]) -> list[str]:
    """Every missing file or folder, unknown benchmark, or benchmark asked for but not configured.

    Only the benchmarks in ``wanted_benchmarks`` (``data.benchmarks``) must exist: the
    params may keep the roots of all five while a run evaluates on some.
    """
    problems = []
    if not paths.captions.is_file():
        problems.append(f"COCO captions file {paths.captions}")
    if not paths.images.is_dir():
        problems.append(f"COCO images folder {paths.images}")
    if not paths.labels.is_dir():
        problems.append(f"COCO-Stuff labels folder {paths.labels}")
    for name, root in paths.benchmarks.items():
        if name not in benchmark_names():
            problems.append(f"benchmark {name!r} is unknown (known: {', '.join(benchmark_names())})")
            continue
        if name in wanted_benchmarks:
            problems.extend(f"benchmark {name}: {path}" for path in missing_paths(name, root))
    for name in wanted_benchmarks:
        if name not in paths.benchmarks:
            problems.append(f"benchmark {name!r} is listed in data.benchmarks but has no root in data.real.benchmarks")
    return problems


def coco_classes(split: str = "none") -> list[dict[str, Any]]:
    """``classes.json`` of a real COCO world: the 171 COCO-Stuff categories, unseen as ``split`` says.

    The classes that carry a VOC class under another name list that name as a synonym
    (``tv``: ``tvmonitor``), so that the evaluation tells VOC's seen classes from its unseen ones.
    """
    unseen = set(unseen_coco_names(split))
    synonyms = voc_synonyms()
    return [
        {
            "id": c["id"],
            "name": c["name"],
            "synonyms": synonyms.get(c["name"], []),
            "isthing": int(c["isthing"]),
            "seen": int(c["name"] not in unseen),
        }
        for c in coco_stuff_categories()
    ]


def real_split(real: Mapping[str, Any]) -> str:
    """``data.real.split`` (``none`` when absent), checked."""
    split = str(real.get("split") or "none")
    unseen_coco_names(split)
    return split


def describe_real_world(real: Mapping[str, Any], wanted_benchmarks: list[str]) -> tuple[dict, dict]:
    """Validate the real folders and return ``(manifest, statistics)``.

    Raises :class:`MissingDataError` listing everything that is missing.
    """
    paths = real_paths(real)
    split = real_split(real)
    problems = find_problems(paths, wanted_benchmarks)
    if problems:
        raise MissingDataError("data.source is 'coco' but these are missing:\n  - " + "\n  - ".join(problems))
    captions = read_coco_captions(paths.captions, paths.images)
    if not captions.images:
        raise ValueError(f"{paths.captions}: lists no images")
    first = next(iter(captions.images.values()))
    if not first.path.is_file():
        raise MissingDataError(f"{paths.captions}: image {first.file_name} is not in {paths.images}")
    benchmarks = {name: root for name, root in paths.benchmarks.items() if name in wanted_benchmarks}
    label_files = sum(1 for p in paths.labels.iterdir() if p.suffix == ".png")
    if label_files == 0:
        raise MissingDataError(f"{paths.labels}: holds no COCO-Stuff label PNGs")
    benchmark_counts = {name: len(open_benchmark(name, root)) for name, root in benchmarks.items()}
    manifest = {
        "source": "coco",
        "train": {
            "captions": str(paths.captions),
            "images": str(paths.images),
            "labels": str(paths.labels),
            "classes": "classes.json",
            "label_format": "coco-stuff",
        },
        "benchmarks": {name: {"root": str(root)} for name, root in benchmarks.items()},
    }
    classes = coco_classes(split)
    seen = sum(c["seen"] for c in classes)
    statistics = {
        "source": "coco",
        "split": split,
        "classes": {
            "total": len(classes),
            "stuff": sum(not c["isthing"] for c in classes),
            "things": sum(c["isthing"] for c in classes),
            "seen": seen,
            "unseen": len(classes) - seen,
            "unseen_names": sorted(c["name"] for c in classes if not c["seen"]),
        },
        "train": {
            "images": len(captions.images),
            "captioned_images": len(captions.captions),
            "captions": sum(len(c) for c in captions.captions.values()),
            "orphan_captions": len(captions.orphans),
            "label_files": label_files,
        },
        "benchmarks": {name: {"images": count} for name, count in benchmark_counts.items()},
    }
    return manifest, statistics
