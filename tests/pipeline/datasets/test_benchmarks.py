"""Benchmark readers on fixture folders written in each benchmark's real on-disk format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.io import UnsafePathError
from pipeline.datasets.benchmarks import (
    LAYOUTS,
    SegmentationDataset,
    benchmark_names,
    label_counts,
    missing_paths,
    open_benchmark,
    read_class_list,
)
from pipeline.datasets.vocab import class_names

H, W = 6, 8


def _rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def _write_image(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rgb(seed)).save(path, quality=95)


def _write_label(path: Path, raw: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if raw.dtype == np.uint16:
        Image.fromarray(raw).save(path)  # PIL writes uint16 as a mode I;16 TIFF
        return
    image = Image.fromarray(raw.astype(np.uint8))
    if palette:  # like VOC's SegmentationClass: mode P, the value is the palette index
        image = image.convert("P")
        image.putpalette([c for i in range(256) for c in (i, 255 - i, (7 * i) % 256)])
    image.save(path)


def _raw(values: list[int], dtype) -> np.ndarray:
    raw = np.zeros((H, W), dtype=dtype)
    raw.ravel()[: len(values)] = values
    return raw


def test_uint16_tiff_fixture_is_really_16_bit(tmp_path: Path) -> None:
    _write_label(tmp_path / "a.tif", _raw([846, 65535], np.uint16))
    with Image.open(tmp_path / "a.tif") as image:
        assert image.mode == "I;16" and image.format == "TIFF"


def test_ade150(tmp_path: Path) -> None:
    root = tmp_path / "ADEChallengeData2016"
    for i, key in enumerate(["ADE_val_00000002", "ADE_val_00000001"]):
        _write_image(root / "images/validation" / f"{key}.jpg", i)
        _write_label(root / "annotations/validation" / f"{key}.png", _raw([0, 1, 150, 3], np.uint8))
    dataset = open_benchmark("ade150", root)
    assert isinstance(dataset, SegmentationDataset)
    assert dataset.name == "ade150" and len(dataset.class_names) == 150 and len(dataset) == 2
    assert dataset.keys() == ["ADE_val_00000001", "ADE_val_00000002"]
    assert "bed" in dataset.class_names  # "bed " in the published list, whitespace stripped
    sample = dataset.load("ADE_val_00000001")
    assert sample.image.shape == (H, W, 3) and sample.image.dtype == np.uint8
    assert sample.label.dtype == np.int32
    assert sample.label.ravel()[:4].tolist() == [-1, 0, 149, 2]
    assert (sample.label.ravel()[4:] == -1).all()
    counts = label_counts(dataset)
    assert counts[0] == 2 and counts[149] == 2 and counts[2] == 2 and counts.sum() == 6


def test_ade847_uint16_tiff(tmp_path: Path) -> None:
    root = tmp_path / "ADE20K_2021_17_01"
    _write_image(root / "images_detectron2/validation/ADE_frame_1.jpg")
    _write_label(root / "annotations_detectron2/validation/ADE_frame_1.tif", _raw([0, 846, 65535, 300], np.uint16))
    dataset = open_benchmark("ade847", root)
    assert len(dataset.class_names) == 847
    label = dataset.load("ADE_frame_1").label
    assert label.ravel()[:4].tolist() == [0, 846, -1, 300]


def test_ade847_value_out_of_range(tmp_path: Path) -> None:
    root = tmp_path / "ade847"
    _write_image(root / "images_detectron2/validation/x.jpg")
    _write_label(root / "annotations_detectron2/validation/x.tif", _raw([847], np.uint16))
    with pytest.raises(ValueError, match=r"x.tif: unexpected label values \[847\]"):
        open_benchmark("ade847", root).load("x")


def test_pc459_and_pc59_keys_come_from_annotations(tmp_path: Path) -> None:
    root = tmp_path / "VOCdevkit/VOC2010"
    for key in ("2008_000001", "2008_000002", "2008_000003"):  # JPEGImages holds more than val
        _write_image(root / "JPEGImages" / f"{key}.jpg")
    _write_label(root / "annotations_detectron2/pc459_val/2008_000002.tif", _raw([458, 65535, 0], np.uint16))
    _write_label(root / "annotations_detectron2/pc59_val/2008_000003.png", _raw([58, 255, 0], np.uint8))
    pc459 = open_benchmark("pc459", root)
    assert pc459.keys() == ["2008_000002"] and len(pc459.class_names) == 459
    assert pc459.load("2008_000002").label.ravel()[:3].tolist() == [458, -1, 0]
    pc59 = open_benchmark("pc59", root)
    assert pc59.keys() == ["2008_000003"] and len(pc59.class_names) == 59
    assert pc59.load("2008_000003").label.ravel()[:3].tolist() == [58, -1, 0]


def test_voc20_palette_png_and_list_file(tmp_path: Path) -> None:
    root = tmp_path / "VOCdevkit/VOC2012"
    for key in ("2007_000033", "2007_000042", "2007_000099"):
        _write_image(root / "JPEGImages" / f"{key}.jpg")
        _write_label(root / "SegmentationClass" / f"{key}.png", _raw([0, 1, 20, 255, 15], np.uint8), palette=True)
    (root / "ImageSets/Segmentation").mkdir(parents=True)
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000042\n2007_000033\n\n")
    with Image.open(root / "SegmentationClass/2007_000033.png") as image:
        assert image.mode == "P"
    dataset = open_benchmark("voc20", root)
    assert dataset.keys() == ["2007_000033", "2007_000042"] and len(dataset.class_names) == 20
    assert dataset.load("2007_000042").label.ravel()[:5].tolist() == [-1, 0, 19, -1, 14]


def test_voc20_list_entry_escaping_root_refused(tmp_path: Path) -> None:
    root = tmp_path / "VOC2012"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets/Segmentation").mkdir(parents=True)
    (root / "ImageSets/Segmentation/val.txt").write_text("../../secret\n")
    with pytest.raises(UnsafePathError):
        open_benchmark("voc20", root)


def test_demo_layout_reads_its_own_classes(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    _write_image(root / "images/validation/demo_val_00000001.jpg")
    _write_label(root / "annotations/validation/demo_val_00000001.png", _raw([1, 2, 3], np.uint8))
    (root / "classes.json").write_text(json.dumps(["sky", "ring, hoop ", " zebra"]))
    dataset = open_benchmark("demo", root)
    assert dataset.class_names == ["sky", "ring, hoop", "zebra"]
    assert dataset.load("demo_val_00000001").label.ravel()[:4].tolist() == [0, 1, 2, -1]


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    root = tmp_path / "ade"
    _write_image(root / "images/validation/a.jpg")
    _write_label(root / "annotations/validation/a.png", np.zeros((H + 1, W), np.uint8))  # wrong size
    (root / "images/validation/b.jpg").write_bytes(b"\xff\xd8 truncated")  # unreadable
    _write_label(root / "annotations/validation/b.png", np.zeros((H, W), np.uint8))
    _write_image(root / "images/validation/c.jpg")  # annotation missing
    dataset = open_benchmark("ade150", root)
    with pytest.raises(ValueError, match=r"a.png: label size 8x7 differs from image .*a.jpg size 8x6"):
        dataset.load("a")
    with pytest.raises(ValueError, match=r"b.jpg: unreadable image"):
        dataset.load("b")
    with pytest.raises(FileNotFoundError, match=r"c.png: annotation of ade150 image c not found"):
        dataset.load("c")
    (root / "annotations/validation/d.png").write_bytes(b"not a png")
    _write_image(root / "images/validation/d.jpg")
    with pytest.raises(ValueError, match=r"d.png: unreadable label"):
        dataset.load("d")


def test_missing_folders_listed(tmp_path: Path) -> None:
    root = tmp_path / "VOC2012"
    (root / "JPEGImages").mkdir(parents=True)
    missing = missing_paths("voc20", root)
    assert missing == [root / "SegmentationClass", root / "ImageSets/Segmentation/val.txt"]
    assert missing_paths("ade150", tmp_path / "nowhere") == [tmp_path / "nowhere"]
    with pytest.raises(FileNotFoundError, match="SegmentationClass"):
        open_benchmark("voc20", root)
    with pytest.raises(KeyError, match="unknown benchmark 'ade999'"):
        open_benchmark("ade999", root)


def test_registry_and_vocabularies() -> None:
    assert benchmark_names() == ["ade150", "ade847", "demo", "pc459", "pc59", "val", "voc20"]
    assert set(LAYOUTS) == set(benchmark_names())
    for name, size in (("ade150", 150), ("ade847", 847), ("pc459", 459), ("pc59", 59), ("voc20", 20)):
        names = class_names(name)
        assert len(names) == size
        assert all(part.strip() and part == part.strip() for n in names for part in n.split(", "))
    assert class_names("ade847")[1] == "building, edifice"


def test_class_list_errors(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="c.json: expected a non-empty list"):
        read_class_list(tmp_path / "c.json")
