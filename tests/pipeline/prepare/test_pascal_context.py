"""PASCAL-Context 59/459: the class tables, labels.txt and Detail checks, conversions read back by the readers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.datasets.benchmarks import open_benchmark
from pipeline.datasets.vocab import class_names
from pipeline.prepare import pascal_context
from pipeline.prepare.config import ConvertOptions
from pipeline.prepare.records import Rejected
from tests.pipeline.prepare.raw_formats import write_raw_downloads


def test_the_59_category_ids_name_the_59_classes_among_the_459() -> None:
    pc459 = class_names("pc459")
    assert [pc459[i - 1] for i in pascal_context.PC59_CATEGORY_IDS] == class_names("pc59")
    assert len(set(pascal_context.PC59_CATEGORY_IDS)) == 59


@pytest.fixture
def tree(tmp_path):
    return write_raw_downloads(tmp_path / "raw", bad=True, out_of_range=True)


def _items(tree, benchmark):
    return {
        item.key: item
        for item in pascal_context.list_items(tree.raw["pascal_context"], [benchmark], "ImageSets/Main/val.txt")
    }


def test_both_conversions_read_back_pixel_for_pixel(tree, tmp_path) -> None:
    out = tmp_path / "VOC2010"
    for benchmark, convert in (("pc459", pascal_context.convert_pc459), ("pc59", pascal_context.convert_pc59)):
        items = _items(tree, benchmark)
        assert sorted(items) == sorted(set(tree.truths[benchmark]) | set(tree.rejects[benchmark]))
        for key in tree.truths[benchmark]:
            convert(items[key], out, ConvertOptions())
        prepared = open_benchmark(benchmark, out)
        assert prepared.keys() == sorted(tree.truths[benchmark])
        for key, expected in tree.truths[benchmark].items():
            assert np.array_equal(prepared.load(key).label, expected), (benchmark, key)
    accordion = [tree.truths["pc459"][key] == 0 for key in tree.truths["pc459"]]  # not among the 59: ignore
    assert any(mask.any() for mask in accordion)
    assert all((tree.truths["pc59"][key][mask] == -1).all() for key, mask in zip(tree.truths["pc459"], accordion))


@pytest.mark.parametrize("benchmark", ["pc459", "pc59"])
def test_bad_items_are_rejected_with_their_reason(tree, tmp_path, benchmark) -> None:
    convert = {"pc459": pascal_context.convert_pc459, "pc59": pascal_context.convert_pc59}[benchmark]
    items = _items(tree, benchmark)
    for key, reason in tree.rejects[benchmark].items():
        with pytest.raises(Rejected) as info:
            convert(items[key], tmp_path / "VOC2010", ConvertOptions())
        assert info.value.reason == reason, (key, info.value.detail)
    assert not (tmp_path / "VOC2010").exists()


def test_class_lists_that_differ_from_ours_are_refused(tree) -> None:
    root = tree.raw["pascal_context"]
    labels = root / "labels.txt"
    labels.write_text(labels.read_text().replace("2: aeroplane", "2: airplane"))
    with pytest.raises(ValueError, match=r"labels.txt: class names differ .*\"2: 'airplane' vs 'aeroplane'\""):
        pascal_context.read_labels_txt(labels)
    detail = json.loads((root / "trainval_merged.json").read_text())
    detail["categories"] = [c for c in detail["categories"] if c["category_id"] != 397]
    (root / "trainval_merged.json").write_text(json.dumps(detail))
    with pytest.raises(ValueError, match=r"categories differ .*397: None vs 'table'"):
        pascal_context.read_detail(root / "trainval_merged.json", ["2008_000002"])


def test_the_split_list_may_not_leave_the_folder(tree) -> None:
    with pytest.raises(ValueError, match="escapes its dataset root"):
        pascal_context.list_items(tree.raw["pascal_context"], ["pc459"], "../val.txt")
    (tree.raw["pascal_context"] / "ImageSets/Main/val.txt").write_text("2008_000002\n../../etc/passwd\n")
    with pytest.raises(ValueError, match="are not image keys"):
        pascal_context.list_items(tree.raw["pascal_context"], ["pc459"], "ImageSets/Main/val.txt")
