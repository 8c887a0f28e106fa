"""The world manifest: schema checks and path confinement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.io import UnsafePathError
from pipeline.datasets.manifest import check_classes, check_manifest, demo_manifest, load_world, write_manifest


def _write(tmp_path: Path, manifest: dict, classes: list | None = None) -> Path:
    (tmp_path / "coco").mkdir(exist_ok=True)
    classes = (
        classes
        if classes is not None
        else [
            {"id": 1, "name": "sky", "synonyms": [], "isthing": 0, "seen": 1},
            {"id": 2, "name": "ring", "synonyms": ["hoop"], "isthing": 1, "seen": 0},
        ]
    )
    (tmp_path / "coco/classes.json").write_text(json.dumps(classes))
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def test_demo_manifest_resolves_inside_its_folder(tmp_path: Path) -> None:
    world = load_world(_write(tmp_path, demo_manifest()))
    assert world.images_dir == (tmp_path / "coco/images/train").resolve()
    assert world.benchmark_roots == {"demo": (tmp_path / "benchmarks/demo").resolve()}
    assert [c["name"] for c in world.seen_classes] == ["sky"]
    assert [c["name"] for c in world.unseen_classes] == ["ring"]
    with pytest.raises(KeyError, match="no benchmark 'ade150'"):
        world.benchmark("ade150")


def test_escaping_and_absolute_paths_refused_in_a_demo_world(tmp_path: Path) -> None:
    manifest = demo_manifest()
    manifest["train"]["images"] = "../../etc"
    with pytest.raises(UnsafePathError):
        load_world(_write(tmp_path, manifest))
    manifest["train"]["images"] = "/etc"
    with pytest.raises(ValueError, match="a demo world uses relative paths"):
        load_world(_write(tmp_path, manifest))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.update(source="imagenet"), "'source' must be one of"),
        (lambda m: m["train"].pop("labels"), "'train' must hold"),
        (lambda m: m["train"].update(label_format="ade"), "unsupported label_format"),
        (lambda m: m.pop("truth"), "a demo world needs 'truth'"),
        (lambda m: m.update(benchmarks={"demo": "benchmarks/demo"}), "'benchmarks' must map"),
        (lambda m: m["benchmarks"]["demo"].update(classes=3), "'benchmarks' must map"),
        (lambda m: m["benchmarks"]["demo"].update(vocabulary="x.json"), "'benchmarks' must map"),
    ],
)
def test_bad_manifests_name_the_file(tmp_path: Path, change, message: str) -> None:
    manifest = demo_manifest()
    change(manifest)
    with pytest.raises(ValueError, match=message) as info:
        load_world(_write(tmp_path, manifest))
    assert "manifest.json" in str(info.value)
    with pytest.raises(ValueError, match=message):
        write_manifest(tmp_path / "out.json", manifest)
    assert not (tmp_path / "out.json").exists()


def test_bad_classes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"classes.json: classes\[0\] must be"):
        load_world(_write(tmp_path, demo_manifest(), [{"id": 0, "name": "x", "synonyms": [], "isthing": 0, "seen": 1}]))
    twice = [{"id": 1, "name": n, "synonyms": [], "isthing": 0, "seen": 1} for n in ("a", "b")]
    with pytest.raises(ValueError, match="class id 1 repeated"):
        check_classes(twice, "c.json")
    with pytest.raises(ValueError, match="not an object"):
        check_manifest([], "m.json")


def test_a_benchmark_reads_the_class_list_its_entry_names(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    root = tmp_path / "benchmarks/ade847"
    (root / "images_detectron2/validation").mkdir(parents=True)
    (root / "annotations_detectron2/validation").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(root / "images_detectron2/validation/a.jpg")
    Image.fromarray(np.array([[0, 1, 2, 65535, 1]] * 4, np.uint16)).save(
        root / "annotations_detectron2/validation/a.tif"
    )
    (root / "classes.json").write_text(json.dumps(["sky", "ring, hoop", "volcano"]))
    manifest = demo_manifest(["ade847", "demo"])
    assert manifest["benchmarks"]["ade847"] == {
        "root": "benchmarks/ade847",
        "classes": "benchmarks/ade847/classes.json",
    }
    world = load_world(_write(tmp_path, manifest))
    bench = world.benchmark("ade847")
    assert bench.class_names == ["sky", "ring, hoop", "volcano"]  # the world's list, not the shipped 847
    assert bench.load("a").label[0].tolist() == [0, 1, 2, -1, 1]
    assert world.closed_vocabulary
    manifest["benchmarks"]["ade847"] = {"root": "benchmarks/ade847"}
    assert len(load_world(_write(tmp_path, manifest)).benchmark("ade847").class_names) == 847  # shipped list
