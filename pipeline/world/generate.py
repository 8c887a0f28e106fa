"""Write the demo world to disk in the real formats (layout: docs/architecture.md).

Every image has its own random stream (seed, split, index), and the class plan of
each split is dealt up front, so the bytes do not depend on ``workers`` or on the
order in which images are made. JPEGs are written by PIL at a fixed quality, PNGs
without timestamps, JSON with sorted keys; nothing depends on the clock.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from core.io import write_json
from pipeline.datasets.coco import COCO_STUFF_IGNORE
from pipeline.datasets.files import read_label, read_rgb
from pipeline.datasets.manifest import MANIFEST_NAME, demo_manifest, write_manifest
from pipeline.world.benchmark_files import prepare_folders, write_key_list, write_pair
from pipeline.world.benchmarks import DemoBenchmark, val_benchmark, world_benchmarks
from pipeline.world.captions import CaptionText, write_captions
from pipeline.world.catalogue import CATALOGUE, ClassSpec, choose_unseen, classes_json
from pipeline.world.config import WorldConfig
from pipeline.world.preview import PreviewItem, make_preview
from pipeline.world.scene import ScenePlan, compose, plan_split, render
from pipeline.world.seeding import STREAM_IMAGE, rng_for

REMNANT_RULE = (
    "a thing whose visible area after occlusion is below min_visible of the image is removed before "
    "painting; a stuff band below it is merged into its neighbour band (a lone band stays)"
)


@dataclass(frozen=True)
class Segment:
    """One visible region: a thing instance or a stuff band, as a COCO RLE with its area and box."""

    class_index: int
    isthing: bool
    rle: dict[str, Any]
    area: int
    bbox: tuple[float, float, float, float]


@dataclass(frozen=True)
class ImageResult:
    """What a worker hands back for one image; files are already written."""

    split: str
    index: int
    file_name: str
    segments: tuple[Segment, ...]
    captions: tuple[CaptionText, ...]
    dropped: int


def train_file_stem(index: int) -> str:
    return f"{index + 1:012d}"


def _encode(mask: np.ndarray) -> tuple[dict[str, Any], tuple[float, float, float, float]]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    x, y, width, height = (float(value) for value in mask_utils.toBbox(rle))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}, (x, y, width, height)


def _save_jpeg(array: np.ndarray, path: Path, quality: int) -> None:
    Image.fromarray(array).save(path, format="JPEG", quality=quality, subsampling=0, optimize=False)


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array.astype(np.uint8)).save(path, format="PNG", optimize=False, compress_level=1)


def make_image(
    out: Path, config: WorldConfig, unseen: frozenset[int], benchmark: DemoBenchmark | None, item: tuple[int, ScenePlan]
) -> ImageResult:
    """Compose, paint, caption and write one image of the training split (``benchmark`` None) or of a benchmark."""
    index, plan = item
    split = "train" if benchmark is None else benchmark.split
    rng = rng_for(config.seed, STREAM_IMAGE, split, index)
    scene = compose(plan, CATALOGUE, config if benchmark is None else benchmark.scene_config(config), rng)
    image = render(scene, CATALOGUE, rng)
    classes = scene.class_map()
    segments = []
    for layer_index, layer in enumerate(scene.layers):
        visible = scene.visible(layer_index)
        rle, bbox = _encode(visible)
        spec = CATALOGUE[layer.class_index]
        segments.append(Segment(layer.class_index, spec.isthing, rle, int(visible.sum()), bbox))
    if benchmark is None:
        stem = train_file_stem(index)
        truth = classes.astype(np.uint8)  # class index = id - 1: the COCO-Stuff value
        seen = truth.copy()
        seen[np.isin(classes, sorted(unseen))] = COCO_STUFF_IGNORE
        _save_jpeg(image, out / "coco/images/train" / f"{stem}.jpg", config.jpeg_quality)
        _save_png(seen, out / "coco/labels/train" / f"{stem}.png")
        _save_png(truth, out / "truth/labels/train" / f"{stem}.png")
        captions = write_captions(scene.facts(), CATALOGUE, config.captions_per_image, rng)
    else:
        stem = benchmark.file_stem(index)
        write_pair(out / "benchmarks" / benchmark.name, benchmark, stem, image, classes, config.jpeg_quality)
        captions = []
    return ImageResult(split, index, f"{stem}.jpg", tuple(segments), tuple(captions), scene.dropped)


def _run(function: Callable[[Any], ImageResult], items: Sequence[Any], workers: int) -> list[ImageResult]:
    if workers <= 1 or len(items) < 2 * workers:
        return [function(item) for item in items]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(function, items, chunksize=max(1, min(64, len(items) // (4 * workers)))))


def _coco_entries(
    results: Iterable[ImageResult], size: int, annotations_of: Callable[[ImageResult], Iterable[dict[str, Any]]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """COCO's ``images`` (id: the image's index + 1) and ``annotations``: each of ``annotations_of(result)``'s
    fields after its running id (from 1) and its image's id."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for result in results:
        image_id = result.index + 1
        images.append({"id": image_id, "file_name": result.file_name, "height": size, "width": size})
        for fields in annotations_of(result):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **fields})
    return images, annotations


def _captions_json(results: Iterable[ImageResult], size: int) -> dict[str, Any]:
    images, annotations = _coco_entries(results, size, lambda result: ({"caption": c.text} for c in result.captions))
    return {
        "info": {"description": "ovseg demo world: synthetic captioned images"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
    }


def _segment_fields(result: ImageResult) -> Iterable[dict[str, Any]]:
    """The instance annotation of each of ``result``'s segments (its id and image id aside)."""
    for segment in result.segments:
        yield {
            "category_id": segment.class_index + 1,
            "segmentation": segment.rle,
            "area": segment.area,
            "bbox": list(segment.bbox),
            "iscrowd": 0,
        }


def _instances_json(results: Iterable[ImageResult], size: int, classes: list[dict]) -> dict[str, Any]:
    images, annotations = _coco_entries(results, size, _segment_fields)
    categories = [
        {
            "id": c["id"],
            "name": c["name"],
            "supercategory": "thing" if c["isthing"] else "stuff",
            "isthing": c["isthing"],
        }
        for c in classes
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def _per_class(counts: np.ndarray, catalogue: tuple[ClassSpec, ...]) -> dict[str, int]:
    return {spec.name: int(counts[i]) for i, spec in enumerate(catalogue)}


def benchmark_statistics(
    benchmark: DemoBenchmark, results: list[ImageResult], unseen: frozenset[int]
) -> dict[str, Any]:
    """One benchmark's entry of ``world.json``: its vocabulary and the classes its images show."""
    label_of = benchmark.label_of
    listed = [c for c in range(len(CATALOGUE)) if label_of[c] >= 0]
    shown = sorted({s.class_index for r in results for s in r.segments if label_of[s.class_index] >= 0})
    return {
        "images": len(results),
        "vocabulary": len(benchmark.class_names),
        "world_classes": len(listed),
        "seen_classes": sum(c not in unseen for c in listed),
        "unseen_classes": sum(c in unseen for c in listed),
        "distractors": benchmark.distractors,
        "classes_present": len(shown),
        "seen_present": sum(c not in unseen for c in shown),
        "unseen_present": sum(c in unseen for c in shown),
        "world_classes_ignored": sorted(CATALOGUE[c].name for c in range(len(CATALOGUE)) if label_of[c] < 0),
    }


def _class_counts(results: list[ImageResult]) -> tuple[np.ndarray, np.ndarray]:
    """Per catalogue class: its segments and the images showing it, over ``results``."""
    segments = np.zeros(len(CATALOGUE), dtype=np.int64)
    images_with = np.zeros(len(CATALOGUE), dtype=np.int64)
    for result in results:
        for segment in result.segments:
            segments[segment.class_index] += 1
        images_with[sorted({s.class_index for s in result.segments})] += 1
    return segments, images_with


def _class_statistics(unseen: frozenset[int], unseen_mask: np.ndarray) -> dict[str, Any]:
    """The ``classes`` entry of ``world.json``: how many stuff, thing, seen and unseen classes."""
    k = len(CATALOGUE)
    n_things = sum(spec.isthing for spec in CATALOGUE)
    return {
        "total": k,
        "stuff": k - n_things,
        "things": n_things,
        "seen": int(k - unseen_mask.sum()),
        "unseen": int(unseen_mask.sum()),
        "unseen_share": round(float(unseen_mask.mean()), 4),
        "unseen_names": sorted(CATALOGUE[i].name for i in unseen),
    }


def _train_statistics(config: WorldConfig, unseen_mask: np.ndarray, train: list[ImageResult]) -> dict[str, Any]:
    """The ``train`` entry of ``world.json``: images, captions, segments and images per class, and how often
    captions mention the classes shown (per class, and as rates over the seen and the unseen classes)."""
    segments, images_with = _class_counts(train)
    mentions = np.zeros(len(CATALOGUE), dtype=np.int64)
    colour_captions = 0
    for result in train:
        for caption in result.captions:
            mentions[list(caption.mentions)] += 1
            colour_captions += caption.colour_word
    rate = mentions / np.maximum(images_with * config.captions_per_image, 1)
    captions = sum(len(r.captions) for r in train)
    return {
        "images": len(train),
        "captions": captions,
        "captions_per_image": config.captions_per_image,
        "things_per_image_mean": round(float(np.mean([sum(s.isthing for s in r.segments) for r in train])), 3),
        "stuff_per_image_mean": round(float(np.mean([sum(not s.isthing for s in r.segments) for r in train])), 3),
        "dropped_remnants": int(sum(r.dropped for r in train)),
        "segments_per_class": _per_class(segments, CATALOGUE),
        "images_per_class": _per_class(images_with, CATALOGUE),
        "mentions_per_class": _per_class(mentions, CATALOGUE),
        "mention_rate_seen": round(float(rate[~unseen_mask].mean()), 4),
        "mention_rate_unseen": round(float(rate[unseen_mask].mean()), 4) if unseen_mask.any() else None,
        "colour_word_share": round(colour_captions / max(captions, 1), 4),
    }


def world_statistics(
    config: WorldConfig,
    unseen: frozenset[int],
    train: list[ImageResult],
    benchmark: list[ImageResult],
    benchmarks: dict[str, tuple[DemoBenchmark, list[ImageResult]]] | None = None,
) -> dict[str, Any]:
    """The numbers of ``world.json``: classes, images, captions, segments per class, mention rates, and
    (``benchmarks``: name -> its spec and images) each benchmark's vocabulary and classes present."""
    unseen_mask = np.isin(np.arange(len(CATALOGUE)), sorted(unseen))
    bench_segments, bench_images = _class_counts(benchmark)
    return {
        "source": "demo",
        "seed": config.seed,
        "image_size": config.image_size,
        "remnant_rule": REMNANT_RULE,
        "min_visible": config.min_visible,
        "classes": _class_statistics(unseen, unseen_mask),
        "train": _train_statistics(config, unseen_mask, train),
        "benchmark": {
            "name": "demo",
            "images": len(benchmark),
            "segments_per_class": _per_class(bench_segments, CATALOGUE),
            "images_per_class": _per_class(bench_images, CATALOGUE),
            "min_segments_per_class": int(bench_segments.min()),
        },
        "benchmarks": {
            name: benchmark_statistics(spec, results, unseen)
            for name, (spec, results) in sorted((benchmarks or {}).items())
        },
    }


def _preview_items(out: Path, train: list[ImageResult], count: int) -> list[PreviewItem]:
    items = []
    for result in train[:count]:
        stem = Path(result.file_name).stem
        items.append(
            PreviewItem(
                image=read_rgb(out / "coco/images/train" / result.file_name),
                truth=read_label(out / "truth/labels/train" / f"{stem}.png").astype(np.int32),
                captions=[c.text for c in result.captions],
            )
        )
    return items


def generate_world(config: WorldConfig, out: Path, benchmarks: Sequence[str] = ("demo",)) -> dict[str, Any]:
    """Write the demo world with ``benchmarks`` (``demo`` always among them, and ``val`` when
    ``config.val_images``; see :mod:`pipeline.world.benchmarks`) into the (empty) folder ``out``;
    return the ``world.json`` statistics."""
    out = Path(out)
    for folder in ("coco/images/train", "coco/labels/train", "coco/annotations", "truth/labels/train"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    unseen_names = choose_unseen(CATALOGUE, config.unseen_fraction, config.seed)
    unseen = frozenset(i for i, spec in enumerate(CATALOGUE) if spec.name in unseen_names)
    classes = classes_json(CATALOGUE, unseen_names)
    write_json(out / "coco/classes.json", classes)
    specs = world_benchmarks(sorted({"demo", *benchmarks}), config, unseen)
    if config.val_images:
        specs.append(val_benchmark(CATALOGUE, config))

    plans = plan_split(CATALOGUE, config.train_images, config, "train")
    train = _run(functools.partial(make_image, out, config, unseen, None), list(enumerate(plans)), config.workers)
    made: dict[str, tuple[DemoBenchmark, list[ImageResult]]] = {}
    for spec in specs:
        root = prepare_folders(out, spec)
        plans = plan_split(CATALOGUE, spec.images, spec.scene_config(config), spec.split, spec.things)
        worker = functools.partial(make_image, out, config, unseen, spec)
        made[spec.name] = (spec, _run(worker, list(enumerate(plans)), config.workers))
        write_key_list(root, spec)

    write_json(out / "coco/annotations/captions_train.json", _captions_json(train, config.image_size))
    write_json(out / "truth/instances_train.json", _instances_json(train, config.image_size, classes))
    statistics = world_statistics(config, unseen, train, made["demo"][1], made)
    write_json(out / "world.json", statistics)
    overlay_names = [spec.name + ("*" if i in unseen else "") for i, spec in enumerate(CATALOGUE)]
    preview = make_preview(_preview_items(out, train, config.preview_images), overlay_names)
    preview.save(out / "preview.png", format="PNG", optimize=False)
    write_manifest(out / MANIFEST_NAME, demo_manifest(sorted(made)))
    return statistics
