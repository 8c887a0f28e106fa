"""ADE20K-847 from ADE20K_2021_17_01: the class ids, the index pickle, the items, one conversion read back."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from pipeline.datasets.benchmarks import open_benchmark
from pipeline.datasets.vocab import class_names
from pipeline.prepare import ade847
from pipeline.prepare.config import ConvertOptions
from pipeline.prepare.label_maps import resize_nearest
from pipeline.prepare.records import Rejected
from tests.pipeline.prepare.raw_formats import ADE_OBJECTS, write_ade_index, write_raw_downloads


def test_the_847_class_ids_are_unique_and_name_our_classes() -> None:
    pairs = json.loads(ade847.IDS_FILE.read_text())
    ids = ade847.category_ids()
    assert len(ids) == len(set(ids)) == 847 and min(ids) >= 1
    assert [name for _, name in pairs] == class_names("ade847")
    assert ids[0] == 2978 and pairs[0][1] == "wall"  # detectron2's first class


def test_the_index_is_read_without_running_code(tmp_path) -> None:
    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    index = {"filename": [Exploit()], "folder": [], "objectnames": []}
    (tmp_path / "index_ade20k.pkl").write_bytes(pickle.dumps(index))
    with pytest.raises(ValueError, match=r"index_ade20k.pkl: not a readable ADE20K index \(refusing to load"):
        ade847.read_index(tmp_path / "index_ade20k.pkl")
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "index_ade20k.pkl").write_bytes(pickle.dumps({"filename": [], "folder": []}))
    with pytest.raises(ValueError, match=r"lacks \['objectnames'\]"):
        ade847.read_index(tmp_path / "index_ade20k.pkl")


def test_items_are_the_validation_images_and_unlisted_labels(tmp_path) -> None:
    tree = write_raw_downloads(tmp_path, bad=True)
    items = {item.key: item for item in ade847.list_items(tree.raw["ade847"])}
    assert sorted(items) == sorted(tree.truths["ade847"]) + sorted(tree.rejects["ade847"])
    first = items["ADE_val_00000001"]
    assert first.image_name == "images/ADE/validation/abbey/ADE_val_00000001.jpg"
    assert first.label_name == "images/ADE/validation/abbey/ADE_val_00000001_seg.png"
    assert first.extra["objects"] == ADE_OBJECTS
    assert items["ADE_val_00000007"].image is None  # the _seg.png the index does not list


def test_an_index_path_out_of_the_root_is_refused(tmp_path) -> None:
    root = tmp_path / "ADE20K_2021_17_01"
    write_ade_index(root, [("ADE_val_00000001.jpg", "../../../../etc")])
    with pytest.raises(ValueError, match="entry 0: path .* escapes its dataset root"):
        ade847.list_items(root)


def test_conversion_resizes_like_detectron2_and_reads_back(tmp_path) -> None:
    tree = write_raw_downloads(tmp_path / "raw")
    out = tmp_path / "prepared"
    items = {item.key: item for item in ade847.list_items(tree.raw["ade847"])}
    for item in items.values():
        ade847.convert(item, out, ConvertOptions(ade847_max_short_side=20, jpeg_quality=95))
    prepared = open_benchmark("ade847", out)
    assert prepared.keys() == ["ADE_val_00000001", "ADE_val_00000002"]
    small = prepared.load("ADE_val_00000001")  # 12 x 16: kept, the image copied byte for byte
    assert np.array_equal(small.label, tree.truths["ade847"]["ADE_val_00000001"])
    image = items["ADE_val_00000001"].image
    assert (out / "images_detectron2/validation/ADE_val_00000001.jpg").read_bytes() == Path(image).read_bytes()
    large = prepared.load("ADE_val_00000002")  # 30 x 40 -> 20 x 27
    assert large.image.shape == (20, 27, 3)
    assert np.array_equal(large.label, resize_nearest(tree.truths["ade847"]["ADE_val_00000002"], 20, 27))


def test_values_beyond_the_index_are_out_of_range(tmp_path) -> None:
    tree = write_raw_downloads(tmp_path / "raw", out_of_range=True)
    item = next(i for i in ade847.list_items(tree.raw["ade847"]) if i.key == "ADE_val_00000008")
    with pytest.raises(Rejected, match=r"label values \[6400\] outside 0..3700") as info:
        ade847.convert(item, tmp_path / "prepared", ConvertOptions())
    assert info.value.reason == "out_of_range"
    assert not (tmp_path / "prepared").exists()
