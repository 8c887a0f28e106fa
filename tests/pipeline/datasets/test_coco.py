"""COCO captions and COCO-Stuff labels readers on fixture files written in the real formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.io import UnsafePathError
from pipeline.datasets.coco import (
    Caption,
    CocoStuffLabels,
    coco_stuff171_labels,
    coco_stuff_table,
    read_coco_captions,
    read_coco_stuff_label,
)
from pipeline.datasets.segmentation import SegmentationDataset


def _captions_file(tmp_path: Path, images: list[dict], annotations: list[dict]) -> Path:
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def _image(i: int, name: str | None = None) -> dict:
    return {"id": i, "file_name": name or f"{i:012d}.jpg", "height": 4, "width": 6}


def test_captions_grouped_sorted_and_orphans(tmp_path: Path) -> None:
    images = [_image(7), _image(3), _image(5)]
    annotations = [
        {"id": 12, "image_id": 7, "caption": " a dog "},
        {"id": 10, "image_id": 7, "caption": "a cat"},
        {"id": 11, "image_id": 3, "caption": "a ring"},
        {"id": 13, "image_id": 99, "caption": "nobody's"},
    ]
    result = read_coco_captions(_captions_file(tmp_path, images, annotations), tmp_path / "img")
    assert list(result.images) == [3, 5, 7]
    assert result.images[3].path == (tmp_path / "img" / "000000000003.jpg").resolve()
    assert result.images[7].height == 4 and result.images[7].width == 6
    assert list(result.captions) == [3, 7]
    assert [c.caption_id for c in result.captions[7]] == [10, 12]
    assert result.captions[7][1].text == "a dog"
    assert 5 not in result.captions
    assert result.orphans == [Caption(13, 99, "nobody's")]
    assert [c.caption_id for c in result.all_captions()] == [11, 10, 12]


@pytest.mark.parametrize("name", ["../x.jpg", "/etc/passwd", "a/../../x.jpg"])
def test_unsafe_file_name_refused(tmp_path: Path, name: str) -> None:
    path = _captions_file(tmp_path, [_image(1), _image(2, name)], [])
    with pytest.raises(UnsafePathError) as info:
        read_coco_captions(path, tmp_path / "img")
    assert "captions.json" in str(info.value) and "images[1]" in str(info.value)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"images": []}', "missing list 'annotations'"),
        ('{"images": [{"id": 1, "file_name": "a.jpg", "height": 2}], "annotations": []}', "lacks key 'width'"),
        ('{"images": [], "annotations": [{"id": 1, "image_id": 1}]}', "lacks key 'caption'"),
        ('{"images": [], "annotations": [{"id": "1", "image_id": 1, "caption": "x"}]}', "wrong type"),
    ],
)
def test_malformed_captions_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad_captions.json"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        read_coco_captions(path, tmp_path)
    assert "bad_captions.json" in str(info.value) and message in str(info.value)


def test_duplicate_ids_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="repeats image id 1"):
        read_coco_captions(_captions_file(tmp_path, [_image(1), _image(1)], []), tmp_path)
    annotations = [{"id": 4, "image_id": 1, "caption": "x"}] * 2
    with pytest.raises(ValueError, match="repeats caption id 4"):
        read_coco_captions(_captions_file(tmp_path, [_image(1)], annotations), tmp_path)


def test_coco_stuff171_label_gaps_become_contiguous(tmp_path: Path) -> None:
    table = coco_stuff_table([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13])  # id 12 is a gap in COCO
    raw = np.array([[0, 10, 12, 255]], dtype=np.uint8)  # ids 1, 11, 13, ignore
    Image.fromarray(raw).save(tmp_path / "l.png")
    label = read_coco_stuff_label(tmp_path / "l.png", table, (1, 4))
    assert label.dtype == np.int32
    assert label.tolist() == [[0, 10, 11, -1]]
    Image.fromarray(np.array([[11]], dtype=np.uint8)).save(tmp_path / "gap.png")  # id 12: not a category
    with pytest.raises(ValueError, match="gap.png: unexpected label values \\[11\\]"):
        read_coco_stuff_label(tmp_path / "gap.png", table)
    with pytest.raises(ValueError, match="l.png: label size 4x1 differs"):
        read_coco_stuff_label(tmp_path / "l.png", table, (2, 4))


def test_coco_stuff_dataset(tmp_path: Path) -> None:
    images, labels = tmp_path / "train2017", tmp_path / "stuffthingmaps"
    images.mkdir()
    labels.mkdir()
    rgb = np.zeros((5, 6, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(images / "000000000002.jpg", quality=95)
    raw = np.full((5, 6), 255, dtype=np.uint8)
    raw[0, 0], raw[1, 1], raw[2, 2] = 0, 181, 12  # person, wood, id 13 (stop sign)
    Image.fromarray(raw).save(labels / "000000000002.png")
    Image.fromarray(raw[:4]).save(labels / "000000000001.png")  # wrong size
    Image.fromarray(rgb).save(images / "000000000001.jpg")
    dataset = coco_stuff171_labels(images, labels)
    assert isinstance(dataset, SegmentationDataset)
    assert len(dataset) == 2 and dataset.keys() == ["000000000001", "000000000002"]
    assert len(dataset.class_names) == 171 and dataset.class_names[-1] == "wood"
    sample = dataset.load("000000000002")
    assert sample.image.shape == (5, 6, 3) and sample.image.dtype == np.uint8
    assert sample.label[0, 0] == 0 and sample.label[1, 1] == 170 and sample.label[2, 2] == 11
    assert (sample.label == -1).sum() == 27
    with pytest.raises(ValueError, match="000000000001.png: label size 6x4 differs from image"):
        dataset.load("000000000001")


def test_coco_stuff_dataset_unreadable_image(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.zeros((2, 2), dtype=np.uint8)).save(tmp_path / "lab" / "a.png")
    dataset = CocoStuffLabels(tmp_path / "img", tmp_path / "lab", [{"id": 1, "name": "x"}])
    with pytest.raises(ValueError, match="a.jpg: unreadable image"):
        dataset.load("a")
    with pytest.raises(FileNotFoundError, match="labels folder not found"):
        CocoStuffLabels(tmp_path / "img", tmp_path / "nope", [])
