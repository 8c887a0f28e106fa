"""The world manifest: the one place downstream stages look to find the training data and benchmarks.

``data/world/manifest.json`` is written in both modes::

    {"source": "demo" | "coco",
     "train": {"captions": ..., "images": ..., "labels": ..., "classes": ..., "label_format": "coco-stuff"},
     "truth": {"instances": ..., "labels": ...},            # demo only
     "benchmarks": {"<name>": {"root": ..., "classes": ...}, ...}}    # "classes" optional

Relative paths are relative to the manifest's folder and may not leave it;
absolute paths (the validated real folders of ``source: coco``) are taken as they are.
``classes`` is a JSON list of ``{id, name, synonyms, isthing, seen}``; training
labels are COCO-Stuff style (value ``id - 1``, 255 ignore, unseen classes 255).
A benchmark's ``classes`` names a ``classes.json`` list of ``"name, synonym"`` strings
in label order that replaces the reader's shipped vocabulary (the demo world's
benchmarks have the world's classes, not the real ones); without it the reader's own
vocabulary applies.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.io import read_json, safe_join, write_json
from pipeline.datasets.benchmarks import open_benchmark, read_class_list
from pipeline.datasets.coco import CocoCaptions, CocoStuffLabels, read_coco_captions
from pipeline.datasets.segmentation import SegmentationDataset

MANIFEST_NAME = "manifest.json"
SOURCES = ("demo", "coco")
LABEL_FORMATS = ("coco-stuff",)
_TRAIN_KEYS = ("captions", "images", "labels", "classes", "label_format")
_TRUTH_KEYS = ("instances", "labels")


_BENCHMARK_KEYS = ("root", "classes")


def demo_manifest(benchmarks: Sequence[str] = ("demo",)) -> dict[str, Any]:
    """The manifest of a generated demo world with ``benchmarks`` (paths as laid out by
    :mod:`pipeline.world.generate`: ``benchmarks/<name>/`` with its ``classes.json``)."""
    return {
        "source": "demo",
        "train": {
            "captions": "coco/annotations/captions_train.json",
            "images": "coco/images/train",
            "labels": "coco/labels/train",
            "classes": "coco/classes.json",
            "label_format": "coco-stuff",
        },
        "truth": {"instances": "truth/instances_train.json", "labels": "truth/labels/train"},
        "benchmarks": {
            name: {"root": f"benchmarks/{name}", "classes": f"benchmarks/{name}/classes.json"}
            for name in sorted(benchmarks)
        },
    }


def check_manifest(manifest: Any, where: str | os.PathLike) -> None:
    """Raise ``ValueError`` naming ``where`` if ``manifest`` does not follow the schema above."""

    def fail(problem: str) -> None:
        raise ValueError(f"{where}: {problem}")

    if not isinstance(manifest, dict):
        fail("manifest is not an object")
    if manifest.get("source") not in SOURCES:
        fail(f"'source' must be one of {SOURCES}, got {manifest.get('source')!r}")
    train = manifest.get("train")
    if not isinstance(train, dict) or any(not isinstance(train.get(k), str) for k in _TRAIN_KEYS):
        fail(f"'train' must hold the strings {list(_TRAIN_KEYS)}")
    if train["label_format"] not in LABEL_FORMATS:
        fail(f"unsupported label_format {train['label_format']!r}")
    truth = manifest.get("truth")
    if manifest["source"] == "demo" and truth is None:
        fail("a demo world needs 'truth'")
    if truth is not None and (
        not isinstance(truth, dict) or any(not isinstance(truth.get(k), str) for k in _TRUTH_KEYS)
    ):
        fail(f"'truth' must hold the strings {list(_TRUTH_KEYS)}")
    benchmarks = manifest.get("benchmarks")
    if not isinstance(benchmarks, dict) or any(
        not isinstance(v, dict)
        or not isinstance(v.get("root"), str)
        or not set(v) <= set(_BENCHMARK_KEYS)
        or not isinstance(v.get("classes", ""), str)
        for v in benchmarks.values()
    ):
        fail("'benchmarks' must map names to {'root': path} or {'root': path, 'classes': path}")


def write_manifest(path: str | os.PathLike, manifest: dict[str, Any]) -> None:
    check_manifest(manifest, path)
    write_json(path, manifest)


def check_classes(classes: Any, where: str | os.PathLike) -> list[dict[str, Any]]:
    """Validate a ``classes.json`` list (ids unique in 1..254, names non-empty) and return it."""
    if not isinstance(classes, list) or not classes:
        raise ValueError(f"{where}: expected a non-empty list of classes")
    ids = set()
    for position, entry in enumerate(classes):
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("id"), int)
            and 1 <= entry["id"] <= 254
            and isinstance(entry.get("name"), str)
            and entry["name"].strip()
            and isinstance(entry.get("synonyms"), list)
            and entry.get("isthing") in (0, 1)
            and entry.get("seen") in (0, 1)
        )
        if not ok:
            raise ValueError(
                f"{where}: classes[{position}] must be {{id 1..254, name, synonyms, isthing 0/1, seen 0/1}}"
            )
        if entry["id"] in ids:
            raise ValueError(f"{where}: class id {entry['id']} repeated")
        ids.add(entry["id"])
    return classes


@dataclass(frozen=True)
class Truth:
    """Full ground truth of the demo training images (every class, instances and stuff regions)."""

    instances_path: Path
    labels: CocoStuffLabels

    def instances(self) -> dict[str, Any]:
        """The COCO instances JSON (RLE segmentations, ``category_id`` = class id)."""
        return read_json(self.instances_path)


@dataclass(frozen=True)
class World:
    """A loaded manifest with its paths resolved."""

    manifest_path: Path
    source: str
    classes: list[dict[str, Any]]
    captions_json: Path
    images_dir: Path
    labels_dir: Path
    truth_paths: tuple[Path, Path] | None
    benchmark_roots: dict[str, Path]
    benchmark_classes: dict[str, Path]  # the class-list files of the benchmarks that name one

    @property
    def closed_vocabulary(self) -> bool:
        """Whether ``classes`` names every class that occurs in the world (the demo world, unseen ones
        included) rather than only the training classes (real data): a benchmark class naming no world
        class is then a distractor, neither seen nor unseen."""
        return self.source == "demo"

    @property
    def seen_classes(self) -> list[dict[str, Any]]:
        return [c for c in self.classes if c["seen"]]

    @property
    def unseen_classes(self) -> list[dict[str, Any]]:
        return [c for c in self.classes if not c["seen"]]

    def captions(self) -> CocoCaptions:
        return read_coco_captions(self.captions_json, self.images_dir)

    def train_labels(self) -> CocoStuffLabels:
        """Training labels over the *seen* classes: index i is ``seen_classes[i]``; unseen pixels are ignore
        (255 on disk in the demo world; a real COCO-Stuff world with a zero-shot split has their ids)."""
        return CocoStuffLabels(
            self.images_dir,
            self.labels_dir,
            self.seen_classes,
            name=f"{self.source}_train",
            ignored_ids=[c["id"] for c in self.unseen_classes],
        )

    def truth(self) -> Truth:
        """The demo world's full ground truth (index i is ``classes[i]``); a real world has none."""
        if self.truth_paths is None:
            raise ValueError(f"{self.manifest_path}: a world with source {self.source!r} has no ground truth")
        instances, labels = self.truth_paths
        return Truth(instances, CocoStuffLabels(self.images_dir, labels, self.classes, name="demo_truth"))

    @property
    def benchmark_names(self) -> list[str]:
        return sorted(self.benchmark_roots)

    def benchmark(self, name: str) -> SegmentationDataset:
        if name not in self.benchmark_roots:
            raise KeyError(f"{self.manifest_path}: no benchmark {name!r}; available: {', '.join(self.benchmark_names)}")
        classes = self.benchmark_classes.get(name)
        return open_benchmark(name, self.benchmark_roots[name], None if classes is None else read_class_list(classes))


def load_world(manifest_path: str | os.PathLike) -> World:
    """Read and validate ``manifest.json`` and the classes it names."""
    manifest_path = Path(manifest_path)
    manifest = read_json(manifest_path)
    check_manifest(manifest, manifest_path)
    base = manifest_path.parent

    def resolve(value: str) -> Path:
        if os.path.isabs(value):
            if manifest["source"] == "demo":
                raise ValueError(f"{manifest_path}: a demo world uses relative paths, got {value!r}")
            return Path(value)
        return safe_join(base, value)

    train = manifest["train"]
    classes_path = resolve(train["classes"])
    classes = check_classes(read_json(classes_path), classes_path)
    truth = manifest.get("truth")
    return World(
        manifest_path=manifest_path,
        source=manifest["source"],
        classes=sorted(classes, key=lambda c: c["id"]),
        captions_json=resolve(train["captions"]),
        images_dir=resolve(train["images"]),
        labels_dir=resolve(train["labels"]),
        truth_paths=None if truth is None else (resolve(truth["instances"]), resolve(truth["labels"])),
        benchmark_roots={name: resolve(entry["root"]) for name, entry in sorted(manifest["benchmarks"].items())},
        benchmark_classes={
            name: resolve(entry["classes"])
            for name, entry in sorted(manifest["benchmarks"].items())
            if "classes" in entry
        },
    )
