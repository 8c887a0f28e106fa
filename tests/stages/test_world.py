"""Stage `world`: the demo world from params, the real-data (coco) manifest, and its error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from core import paths
from core.io import read_json
from pipeline.datasets.manifest import load_world
from pipeline.world.real import MissingDataError
from pipeline.world.splits import unseen_coco_names
from stages.world import build_world, main

REPO = Path(__file__).resolve().parents[2]


def _params(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"data": data}))
    return path


TINY_DEMO = {
    "source": "demo",
    "seed": 1,
    "benchmarks": ["demo"],
    "demo": {"train_images": 8, "benchmark_images": 4, "image_size": 64, "preview_images": 2, "workers": 1},
}


def test_demo_world_from_params(tmp_path: Path, capsys) -> None:
    out = tmp_path / paths.WORLD
    assert main(["--params", str(_params(tmp_path, TINY_DEMO)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "8 training images" in printed and "generated in" in printed
    world = load_world(out / "manifest.json")
    assert world.source == "demo" and len(world.captions().images) == 8
    assert read_json(out / "manifest.json")["train"]["captions"] == "coco/annotations/captions_train.json"
    assert not list(tmp_path.glob("data/.world.tmp-*"))  # the temporary folder was renamed away


def test_demo_world_writes_the_benchmarks_of_the_params(tmp_path: Path, capsys) -> None:
    out = tmp_path / paths.WORLD
    data = {**TINY_DEMO, "benchmarks": ["voc20", "ade847"], "demo": {**TINY_DEMO["demo"], "extra_benchmark_images": 3}}
    assert main(["--params", str(_params(tmp_path, data)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "benchmark ade847: 3 images, 847 class names (44 of the world, 803 distractors)" in printed
    assert "benchmark voc20: 3 images, 20 class names" in printed
    world = load_world(out / "manifest.json")
    assert world.benchmark_names == ["ade847", "demo", "val", "voc20"]  # demo and val always: gauges and tuning
    assert len(world.benchmark("ade847")) == 3 and len(world.benchmark("demo")) == 4


def test_demo_refuses_real_benchmarks_and_bad_keys(tmp_path: Path, capsys) -> None:
    data = {**TINY_DEMO, "benchmarks": ["demo", "ade150"]}
    assert main(["--params", str(_params(tmp_path, data)), "--out", str(tmp_path / "w")]) == 2
    assert "['ade150'] need data.source 'coco'" in capsys.readouterr().err
    data = {**TINY_DEMO, "demo": {"train_image": 3}}
    assert main(["--params", str(_params(tmp_path, data)), "--out", str(tmp_path / "w")]) == 2
    assert "unknown keys ['train_image']" in capsys.readouterr().err
    data = {**TINY_DEMO, "source": "imagenet"}
    assert main(["--params", str(_params(tmp_path, data)), "--out", str(tmp_path / "w")]) == 2
    assert "data.source must be 'demo' or 'coco'" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def _coco_tree(root: Path) -> dict:
    """COCO 2017 + COCO-Stuff + ADE20K-150 in their real layouts, two images each."""
    coco = root / "coco"
    (coco / "annotations").mkdir(parents=True)
    (coco / "train2017").mkdir()
    (coco / "stuffthingmaps/train2017").mkdir(parents=True)
    images, annotations = [], []
    for image_id in (9, 25):
        name = f"{image_id:012d}"
        Image.fromarray(np.full((10, 12, 3), image_id, np.uint8)).save(coco / "train2017" / f"{name}.jpg")
        label = np.full((10, 12), 255, np.uint8)
        label[:5] = 181  # wood (id 182)
        label[5:, :6] = 0  # person (id 1)
        Image.fromarray(label).save(coco / "stuffthingmaps/train2017" / f"{name}.png")
        images.append({"id": image_id, "file_name": f"{name}.jpg", "height": 10, "width": 12})
        annotations.append({"id": 100 + image_id, "image_id": image_id, "caption": "A person on a wooden floor."})
    annotations.append({"id": 500, "image_id": 77, "caption": "An image that is not in the file."})
    (coco / "annotations/captions_train2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations})
    )
    ade = root / "ADEChallengeData2016"
    (ade / "images/validation").mkdir(parents=True)
    (ade / "annotations/validation").mkdir(parents=True)
    for k in (1, 2):
        Image.fromarray(np.zeros((7, 9, 3), np.uint8)).save(ade / f"images/validation/ADE_val_{k:08d}.jpg")
        Image.fromarray(np.full((7, 9), k, np.uint8)).save(ade / f"annotations/validation/ADE_val_{k:08d}.png")
    return {
        "source": "coco",
        "seed": 0,
        "benchmarks": ["ade150"],
        "demo": {},
        "real": {
            "coco_root": str(coco),
            "captions": "annotations/captions_train2017.json",
            "images": "train2017",
            "labels": "stuffthingmaps/train2017",
            "benchmarks": {"ade150": str(ade)},
        },
    }


def test_coco_source_writes_a_manifest_of_validated_paths(tmp_path: Path) -> None:
    data = _coco_tree(tmp_path / "datasets")
    data["real"]["benchmarks"]["voc20"] = str(tmp_path / "not_evaluated")  # configured, not in data.benchmarks
    out = tmp_path / "world"
    statistics = build_world(data, out)
    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "manifest.json", "world.json"]
    manifest = read_json(out / "manifest.json")
    assert manifest["source"] == "coco" and "truth" not in manifest
    assert manifest["train"]["images"] == str(tmp_path / "datasets/coco/train2017")
    assert list(manifest["benchmarks"]) == ["ade150"] and Path(manifest["benchmarks"]["ade150"]["root"]).is_absolute()
    assert statistics["train"] == {
        "images": 2,
        "captioned_images": 2,
        "captions": 2,
        "orphan_captions": 1,
        "label_files": 2,
    }
    assert statistics["benchmarks"] == {"ade150": {"images": 2}}
    assert read_json(out / "world.json") == statistics

    world = load_world(out / "manifest.json")
    assert len(world.classes) == 171 and len(world.seen_classes) == 171
    assert [c.caption_id for c in world.captions().orphans] == [500]
    labels = world.train_labels()
    assert len(labels.class_names) == 171 and labels.keys() == ["000000000009", "000000000025"]
    label = labels.load("000000000009").label
    assert labels.class_names[label[0, 0]] == "wood" and labels.class_names[label[9, 0]] == "person"
    assert label[9, 11] == -1
    assert world.benchmark("ade150").load("ADE_val_00000002").label[0, 0] == 1
    with pytest.raises(ValueError, match="has no ground truth"):
        world.truth()


def test_missing_real_folders_are_all_listed(tmp_path: Path, capsys) -> None:
    data = _coco_tree(tmp_path / "datasets")
    data["real"]["coco_root"] = str(tmp_path / "nowhere")
    data["real"]["benchmarks"] = {"ade150": str(tmp_path / "no_ade"), "voc21": str(tmp_path)}
    data["benchmarks"] = ["ade150", "pc59"]
    with pytest.raises(MissingDataError) as info:
        build_world(data, tmp_path / "world")
    message = str(info.value)
    for expected in (
        "COCO captions file",
        "captions_train2017.json",
        "COCO images folder",
        "train2017",
        "COCO-Stuff labels folder",
        f"benchmark ade150: {tmp_path / 'no_ade'}",
        "benchmark 'voc21' is unknown",
        "benchmark 'pc59' is listed in data.benchmarks",
    ):
        assert expected in message
    previous = tmp_path / "world"
    previous.mkdir()
    (previous / "keep.txt").write_text("old world")
    assert main(["--params", str(_params(tmp_path, data)), "--out", str(previous)]) == 2
    assert "COCO images folder" in capsys.readouterr().err
    assert (previous / "keep.txt").read_text() == "old world"  # a failed run leaves the old output


@pytest.mark.slow
def test_default_world_generation_time(tmp_path: Path, capsys) -> None:
    """The full default world (params.yaml); the time is printed against the 60 s budget, not asserted."""
    out = tmp_path / "world"
    assert main(["--params", str(REPO / "params.yaml"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + printed)
    assert "(budget 60 s)" in printed
    stats = read_json(out / "world.json")
    assert stats["train"]["images"] == 2000 and stats["benchmark"]["images"] == 200
    assert stats["benchmark"]["min_segments_per_class"] >= 10
    vocabularies = {name: entry["vocabulary"] for name, entry in stats["benchmarks"].items()}
    assert vocabularies == {"ade847": 847, "pc459": 459, "demo": 44, "pc59": 59, "voc20": 20, "val": 44}
    assert all(entry["classes_present"] == entry["world_classes"] for entry in stats["benchmarks"].values())


def test_coco_stuff_156_15_marks_its_15_unseen_and_their_pixels_read_as_ignore(tmp_path: Path) -> None:
    data = _coco_tree(tmp_path / "datasets")
    labels_dir = Path(data["real"]["coco_root"]) / "stuffthingmaps/train2017"
    label = np.full((10, 12), 255, np.uint8)
    label[:3] = 181  # wood (id 182): seen
    label[3:6] = 123  # grass (id 124): unseen in the split
    label[6:, :6] = 0  # person (id 1): seen
    label[6:, 6:] = 20  # cow (id 21): unseen in the split
    Image.fromarray(label).save(labels_dir / "000000000009.png")
    data["real"]["split"] = "coco_stuff_156_15"
    statistics = build_world(data, tmp_path / "world")
    world = load_world(tmp_path / "world/manifest.json")
    unseen = sorted(c["name"] for c in world.unseen_classes)
    assert unseen == unseen_coco_names("coco_stuff_156_15")  # the 15 names of pipeline/world/splits.py
    assert statistics["split"] == "coco_stuff_156_15" and statistics["classes"]["seen"] == 156
    assert statistics["classes"]["unseen_names"] == unseen
    labels = world.train_labels()
    assert len(labels.class_names) == 156 and "cow" not in labels.class_names
    read = labels.load("000000000009").label
    assert (read[3:6] == -1).all() and (read[6:, 6:] == -1).all()  # unseen pixels: ignore
    assert labels.class_names[read[0, 0]] == "wood" and labels.class_names[read[9, 0]] == "person"


def test_an_unknown_split_or_real_key_is_refused(tmp_path: Path, capsys) -> None:
    data = _coco_tree(tmp_path / "datasets")
    data["real"]["split"] = "coco_20"
    assert main(["--params", str(_params(tmp_path, data)), "--out", str(tmp_path / "w")]) == 2
    assert "data.real.split: unknown split 'coco_20'" in capsys.readouterr().err
    data["real"].pop("split")
    data["real"]["splits"] = "voc_15_5"
    assert main(["--params", str(_params(tmp_path, data)), "--out", str(tmp_path / "w")]) == 2
    assert "data.real: unknown keys ['splits']" in capsys.readouterr().err
