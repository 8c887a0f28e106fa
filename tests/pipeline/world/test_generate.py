"""A small demo world on disk: formats, statistics, consistency between files, byte-identity."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from core.io import read_json
from pipeline.datasets.files import read_label
from pipeline.datasets.manifest import load_world
from pipeline.world.catalogue import CATALOGUE
from pipeline.world.config import WorldConfig
from pipeline.world.generate import generate_world

# pycocotools' decode trips a numpy 2 copy-keyword deprecation inside the library
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SIZE = 96
CONFIG = WorldConfig(seed=3, train_images=40, benchmark_images=12, image_size=SIZE, preview_images=3, workers=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("world")
    return out, generate_world(CONFIG, out)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_statistics(world) -> None:
    out, stats = world
    assert stats == read_json(out / "world.json")
    classes = stats["classes"]
    assert classes["total"] == len(CATALOGUE) >= 40
    assert classes["stuff"] >= 8 and classes["stuff"] + classes["things"] == classes["total"]
    assert classes["unseen_share"] >= 0.25 and classes["unseen"] == len(classes["unseen_names"])
    train = stats["train"]
    assert train["images"] == 40 and train["captions"] == 200 and train["captions_per_image"] == 5
    assert 1 <= train["things_per_image_mean"] <= 5 and 1 <= train["stuff_per_image_mean"] <= 3
    assert stats["benchmark"]["images"] == 12
    assert sum(stats["benchmark"]["segments_per_class"].values()) > 12
    assert stats["image_size"] == SIZE and "remnant_rule" in stats


def test_file_layout_and_sizes(world) -> None:
    out, _ = world
    images = sorted((out / "coco/images/train").glob("*.jpg"))
    assert [p.name for p in images[:2]] == ["000000000001.jpg", "000000000002.jpg"] and len(images) == 40
    assert len(list((out / "coco/labels/train").glob("*.png"))) == 40
    assert len(list((out / "truth/labels/train").glob("*.png"))) == 40
    assert len(list((out / "benchmarks/demo/images/validation").glob("*.jpg"))) == 12
    assert len(list((out / "benchmarks/demo/annotations/validation").glob("*.png"))) == 12
    with Image.open(images[0]) as image:
        assert image.format == "JPEG" and image.size == (SIZE, SIZE) and image.mode == "RGB"
    with Image.open(out / "preview.png") as preview:
        assert preview.format == "PNG" and preview.height > 3 * SIZE
    names = read_json(out / "benchmarks/demo/classes.json")
    assert names[[s.name for s in CATALOGUE].index("ring")] == "ring, hoop"


def test_unseen_pixels_are_ignored_in_training_labels(world) -> None:
    out, stats = world
    classes = read_json(out / "coco/classes.json")
    unseen_values = np.array([c["id"] - 1 for c in classes if not c["seen"]])
    assert {c["name"] for c in classes if not c["seen"]} == set(stats["classes"]["unseen_names"])
    hidden = 0
    for path in sorted((out / "truth/labels/train").glob("*.png")):
        truth = read_label(path)
        seen = read_label(out / "coco/labels/train" / path.name)
        unseen = np.isin(truth, unseen_values)
        assert (seen[unseen] == 255).all()
        assert np.array_equal(seen[~unseen], truth[~unseen])
        assert truth.max() < len(classes)
        hidden += int(unseen.sum())
    assert hidden > 0


def test_instances_match_truth_labels(world) -> None:
    out, _ = world
    instances = read_json(out / "truth/instances_train.json")
    assert len(instances["categories"]) == len(CATALOGUE)
    by_image: dict[int, list[dict]] = {}
    for annotation in instances["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    for image in instances["images"]:
        truth = read_label(out / "truth/labels/train" / image["file_name"].replace(".jpg", ".png"))
        covered = np.zeros_like(truth, dtype=np.int64)
        for annotation in by_image[image["id"]]:
            mask = mask_utils.decode(
                {
                    "size": annotation["segmentation"]["size"],
                    "counts": annotation["segmentation"]["counts"].encode("ascii"),
                }
            )
            assert mask.sum() == annotation["area"]
            if CATALOGUE[annotation["category_id"] - 1].isthing:
                assert annotation["area"] >= CONFIG.min_visible * SIZE * SIZE  # the remnant rule
            assert (truth[mask.astype(bool)] == annotation["category_id"] - 1).all()
            covered += mask
        assert (covered == 1).all()  # segments tile the image: occlusion is respected


def test_benchmark_labels_are_truth_in_ade_layout(world) -> None:
    out, _ = world
    w = load_world(out / "manifest.json")
    bench = w.benchmark("demo")
    assert len(bench) == 12 and len(bench.class_names) == len(CATALOGUE)
    sample = bench.load(bench.keys()[0])
    raw = read_label(out / "benchmarks/demo/annotations/validation" / f"{bench.keys()[0]}.png")
    assert raw.min() >= 1  # every pixel belongs to a class: nothing is "other"
    assert np.array_equal(sample.label, raw - 1)


def test_captions_describe_visible_classes(world) -> None:
    out, _ = world
    w = load_world(out / "manifest.json")
    captions = w.captions()
    assert not captions.orphans and len(captions.images) == 40
    assert all(len(c) == 5 for c in captions.captions.values())
    noun_class = {
        form: i for i, spec in enumerate(CATALOGUE) for noun in spec.nouns for form in (noun, spec.plural(noun))
    }
    truth = w.truth().labels
    for image_id, record in list(captions.images.items())[:15]:
        present = set(np.unique(truth.load(Path(record.file_name).stem).label).tolist())
        for caption in captions.captions[image_id]:
            mentioned = {noun_class[w] for w in re.findall(r"[a-z]+", caption.text.lower()) if w in noun_class}
            assert mentioned and mentioned <= present, caption.text


def test_load_world_views(world) -> None:
    out, _ = world
    w = load_world(out / "manifest.json")
    assert w.source == "demo" and len(w.classes) == len(CATALOGUE) and w.benchmark_names == ["demo", "val"]
    train = w.train_labels()
    assert train.class_names == [c["name"] for c in w.seen_classes] and len(train) == 40
    truth = w.truth().labels
    key = train.keys()[0]
    seen_label, full_label = train.load(key).label, truth.load(key).label
    names = [c["name"] for c in w.classes]
    unseen = np.isin(full_label, [names.index(c["name"]) for c in w.unseen_classes])
    assert (seen_label[unseen] == -1).all() and (seen_label[~unseen] >= 0).all()
    seen_names = np.array(train.class_names)[seen_label[~unseen]]
    assert (seen_names == np.array(names)[full_label[~unseen]]).all()
    assert len(w.truth().instances()["images"]) == 40


def test_same_seed_same_bytes_any_workers_other_seed_differs(world, tmp_path: Path) -> None:
    out, _ = world
    again = tmp_path / "again"
    again.mkdir()
    generate_world(WorldConfig(**{**CONFIG.__dict__, "workers": 2}), again)
    assert _digests(again) == _digests(out)
    other = tmp_path / "other"
    other.mkdir()
    generate_world(WorldConfig(**{**CONFIG.__dict__, "seed": 4}), other)
    a, b = _digests(out), _digests(other)
    assert a.keys() == b.keys()
    assert a["coco/annotations/captions_train.json"] != b["coco/annotations/captions_train.json"]
    assert a["coco/images/train/000000000001.jpg"] != b["coco/images/train/000000000001.jpg"]
