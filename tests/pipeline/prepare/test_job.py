"""The prepare Beam job on raw fixtures of every benchmark: read back by the readers, rejects, metrics,
same bytes twice, and the verdicts that fail it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from core.io import read_json
from pipeline.beam.shards import read_shards
from pipeline.datasets.benchmarks import open_benchmark
from pipeline.datasets.coco import coco_stuff171_labels
from pipeline.prepare.config import PrepareConfig
from pipeline.prepare.inputs import MissingDownloadError, list_inputs
from pipeline.prepare.job import PreparationError, run_prepare_job, verify
from pipeline.prepare.label_maps import resize_nearest
from pipeline.prepare.outputs import PREPARED_ROOTS
from pipeline.prepare.records import EXPECTED_IMAGES, ITEMS, REJECTS
from tests.pipeline.prepare.raw_formats import write_raw_downloads

SETS = ["ade150", "ade847", "pc459", "pc59", "voc20", "coco_stuff171"]


def _config(tree, **prepare) -> PrepareConfig:
    params = tree.params(**prepare)
    return PrepareConfig.from_params(params["prepare"], params["data"])


def _run(config: PrepareConfig, out: Path, items=None) -> dict:
    items = list_inputs(config) if items is None else items
    return run_prepare_job(items, sorted({item.benchmark for item in items}), out / "prepared", out / "metrics", config)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The raw tree with a bad item of every reason but out_of_range, prepared twice (two folders)."""
    root = tmp_path_factory.mktemp("prepare_job")
    tree = write_raw_downloads(root / "raw", bad=True)
    config = _config(tree)
    metrics = _run(config, root / "first")
    _run(config, root / "second")
    return tree, root, metrics


def test_every_set_is_listed_and_accounted_for(prepared) -> None:
    tree, root, metrics = prepared
    assert sorted(metrics) == sorted(SETS)
    items = read_shards(root / "first/prepared/items", ITEMS)
    rejects = read_shards(root / "first/prepared/rejects", REJECTS)
    for name in SETS:
        done = items.filter(pc.equal(items["benchmark"], name))
        assert sorted(done.column("key").to_pylist()) == sorted(tree.truths[name]), name
        rejected = rejects.filter(pc.equal(rejects["benchmark"], name)).to_pylist()
        assert {row["key"]: row["reason"] for row in rejected} == tree.rejects[name], name
        assert all(row["detail"] for row in rejected)
    example = rejects.filter(pc.equal(rejects["key"], "2007_000100")).to_pylist()[0]
    assert example["label"] == "SegmentationClass/2007_000100.png"
    assert "is 15x12, image JPEGImages/2007_000100.jpg is 16x12" in example["detail"]


def test_the_readers_read_the_prepared_labels_pixel_for_pixel(prepared) -> None:
    tree, root, _ = prepared
    out = root / "first/prepared"
    for name in ("ade847", "pc459", "pc59", "voc20"):
        benchmark = open_benchmark(name, out / PREPARED_ROOTS[name])
        assert benchmark.keys() == sorted(tree.truths[name]), name
        for key, expected in tree.truths[name].items():
            sample = benchmark.load(key)
            truth = expected
            if sample.label.shape != truth.shape:  # ADE-847's large image, resized to a 20-pixel short side
                truth = resize_nearest(truth, *sample.label.shape)
            assert np.array_equal(sample.label, truth), (name, key)
    assert (out / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").read_text() == "2007_000033\n2007_000042\n"
    ade150 = open_benchmark("ade150", tree.raw["ade150"])  # validated in place: the readers' view of the truth
    assert np.array_equal(ade150.load("ADE_val_00000001").label, tree.truths["ade150"]["ADE_val_00000001"])
    coco = coco_stuff171_labels(tree.coco_root / "train2017", tree.coco_root / "stuffthingmaps/train2017")
    assert np.array_equal(coco.load("000000000009").label, tree.truths["coco_stuff171"]["000000000009"])


def test_metrics_say_what_was_prepared_against_what_was_expected(prepared) -> None:
    tree, root, metrics = prepared
    voc = read_json(root / "first/metrics/voc20.json")
    truths = list(tree.truths["voc20"].values())
    pixels = sum(t.size for t in truths)
    assert voc == metrics["voc20"]
    assert voc["images"] == 2 and voc["expected_images"] == 1449 and voc["inputs"] == 4
    assert voc["rejects"] == {"label_without_image": 1, "size_mismatch": 1}
    assert voc["partial"] and voc["missing_images"] == 1447 and not voc["complete"]
    assert voc["classes"] == 20 and voc["classes_present"] == len(set(np.concatenate(truths).ravel()) - {-1})
    assert voc["pixels"] == pixels and voc["ignore_share"] == round(sum((t < 0).sum() for t in truths) / pixels, 6)
    assert read_json(root / "first/metrics/ade150.json")["prepared"] == "validated in place"
    summary = read_json(root / "first/prepared/prepare.json")
    assert summary["benchmarks"]["ade847"]["root"] == "ADE20K_2021_17_01"


def test_two_runs_write_the_same_bytes(prepared) -> None:
    _, root, _ = prepared
    first, second = _files(root / "first"), _files(root / "second")
    assert first.keys() == second.keys() and len(first) > 20
    assert [name for name in first if first[name] != second[name]] == []


def test_a_complete_download_is_not_partial(prepared, monkeypatch) -> None:
    tree, root, _ = prepared
    items = read_shards(root / "first/prepared/items", ITEMS)
    rejects = read_shards(root / "first/prepared/rejects", REJECTS)
    inputs = list_inputs(_config(tree))
    monkeypatch.setitem(EXPECTED_IMAGES, "voc20", 2)
    metrics, problems = verify(inputs, ["voc20"], root / "first/prepared", items, rejects, allow_partial=False)
    assert problems == [] and metrics["voc20"]["complete"] and not metrics["voc20"]["partial"]
    monkeypatch.setitem(EXPECTED_IMAGES, "voc20", 1449)
    _, problems = verify(inputs, ["voc20"], root / "first/prepared", items, rejects, allow_partial=False)
    assert problems == ["voc20: 2 images prepared, 1449 expected (4 inputs; label_without_image 1, size_mismatch 1)"]


def test_out_of_range_values_fail_and_leave_the_previous_outputs(tmp_path) -> None:
    tree = write_raw_downloads(tmp_path / "raw", out_of_range=True)
    config = _config(tree)
    voc_only = [item for item in list_inputs(config) if item.benchmark in ("voc20", "pc459")]
    (tmp_path / "run/prepared").mkdir(parents=True)
    (tmp_path / "run/prepared/previous.txt").write_text("kept")
    with pytest.raises(PreparationError) as info:
        _run(config, tmp_path / "run", voc_only)
    message = str(info.value)
    assert (
        "voc20: 1 labels hold values out of range, e.g. SegmentationClass/2007_000101.png: label values [21]" in message
    )
    assert "pc459: 1 labels hold values out of range" in message and "first rejects:" in message
    assert _files(tmp_path / "run/prepared") == {"previous.txt": b"kept"}
    assert not (tmp_path / "run/metrics").exists()


def test_missing_downloads_are_all_named_before_anything_runs(tmp_path) -> None:
    tree = write_raw_downloads(tmp_path / "raw")
    (tree.raw["ade847"] / "index_ade20k.pkl").unlink()
    (tree.raw["pascal_context"] / "trainval_merged.json").unlink()
    with pytest.raises(MissingDownloadError) as info:
        list_inputs(_config(tree))
    assert "ade847: " in str(info.value) and "index_ade20k.pkl" in str(info.value)
    assert "pc59: " in str(info.value) and "trainval_merged.json" in str(info.value)


@pytest.mark.slow
def test_runners_give_byte_identical_outputs(prepared, tmp_path) -> None:
    tree, root, _ = prepared
    expected = _files(root / "first")
    for name, runner in (("direct2", {"runner": "direct", "workers": 2}), ("dask2", {"runner": "dask", "workers": 2})):
        _run(_config(tree, runner=runner), tmp_path / name)
        assert _files(tmp_path / name) == expected, name
