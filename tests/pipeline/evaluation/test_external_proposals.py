"""Reading masks of any generator from a Parquet file in the `ovseg propose` format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from core.rle import encode_rle
from pipeline.datasets.benchmarks import open_benchmark
from pipeline.datasets.proposal_table import PROPOSALS, proposal_rows, write_table
from pipeline.evaluation.external_proposals import (
    COLUMNS,
    benchmark_image_name,
    benchmark_proposals,
    images_folder,
    read_proposals,
    rle_run_lengths,
)
from tests.doubles import MemoryDataset


def random_masks(count: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Non-empty random masks: blobs, single pixels, full masks, edges."""
    rng = np.random.default_rng(seed)
    masks = rng.random((count, height, width)) < rng.random((count, 1, 1))
    masks[0] = True
    masks[1] = False
    masks[1, height - 1, width - 1] = True
    for mask in masks[2:]:
        mask[rng.integers(height), rng.integers(width)] = True
    return torch.from_numpy(masks)


def rows_of(name: str, masks: torch.Tensor, scores: torch.Tensor | None = None) -> list[dict]:
    scores = torch.ones(masks.shape[0]) if scores is None else scores
    return proposal_rows(name, masks, scores, torch.ones(masks.shape[0], 1), ["object"])


def write(path: Path, rows: list[dict]) -> Path:
    return write_table(pa.Table.from_pylist(rows, schema=PROPOSALS), path)


def test_the_columns_read_are_those_of_ovseg_propose():
    for name, kind in COLUMNS.items():
        assert PROPOSALS.field(name).type == kind


def test_rle_round_trip_keeps_every_pixel(tmp_path):
    images = {
        "a.jpg": random_masks(6, 37, 53, 0),
        "sub/b.png": random_masks(5, 1, 70, 1),
        "c.jpg": random_masks(4, 64, 1, 2),
    }
    rows = [row for name, masks in images.items() for row in rows_of(name, masks, torch.rand(masks.shape[0]))]
    rows.reverse()  # the reader sorts by proposal_id, whatever the file's order
    proposals = read_proposals(write(tmp_path / "p.parquet", rows), tmp_path)
    assert sorted(proposals.images) == sorted(images)
    for name, masks in images.items():
        decoded, scores = proposals.masks(name)
        assert decoded.dtype == torch.bool and torch.equal(decoded, masks)
        expected = [row["score"] for row in sorted(rows, key=lambda r: r["proposal_id"]) if row["file_name"] == name]
        assert scores.dtype == torch.float32 and scores.tolist() == expected
    assert proposals.masks("missing.jpg") is None


def test_run_lengths_are_those_pycocotools_decodes():
    for seed, (height, width) in enumerate([(37, 53), (1, 1), (200, 3), (90, 120)]):
        for mask in random_masks(4, height, width, seed).numpy():
            runs = rle_run_lengths(encode_rle(mask)["counts"])
            assert sum(runs) == height * width
            flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs)  # runs alternate 0, 1, ... column-major
            assert np.array_equal(flat.reshape(width, height).T, mask)
    with pytest.raises(ValueError, match="not COCO RLE"):
        rle_run_lengths("ab c")
    with pytest.raises(ValueError, match="truncated"):
        rle_run_lengths("9P")  # 'P' sets the continuation bit and nothing follows


def test_a_generator_without_classes_needs_only_the_columns_read(tmp_path):
    """SAM has no class names: the table may hold just the columns read, with wider types."""
    mask = np.zeros((8, 9), bool)
    mask[2:5, 3:7] = True
    table = pa.table(
        {
            "file_name": ["x.jpg", "x.jpg"],
            "proposal_id": pa.array([7, 2], pa.int64()),
            "score": pa.array([0.5, 0.25], pa.float64()),
            "mask_rle": [encode_rle(mask)["counts"]] * 2,
            "height": pa.array([8, 8], pa.int64()),
            "width": pa.array([9, 9], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "sam.parquet")
    masks, scores = read_proposals(tmp_path / "sam.parquet", tmp_path).masks("x.jpg")
    assert masks.shape == (2, 8, 9) and torch.equal(masks[0], torch.from_numpy(mask))
    assert scores.tolist() == [0.25, 0.5]  # proposal 2 first


def good_rows() -> list[dict]:
    return rows_of("a.jpg", random_masks(3, 10, 12, 0))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop_columns(["score"]), r"p.parquet: missing column\(s\) \['score'\]"),
        (lambda t: t.set_column(2, "score", pa.array(["high"] * 3)), "column 'score' has type string, expected float"),
        (lambda t: t.set_column(6, "height", pa.array([10, None, 10], pa.int32())), "'height' has 1 null value"),
        (lambda t: t.set_column(6, "height", pa.array([9, 9, 9], pa.int32())), "does not decode to 9×12"),
        (lambda t: t.set_column(6, "height", pa.array([0, 0, 0], pa.int32())), "has size 0×12"),
        (lambda t: t.set_column(6, "height", pa.array([10, 11, 10], pa.int32())), "rows of different sizes"),
        (lambda t: t.set_column(5, "mask_rle", pa.array(["zz"] * 3)), "is not a COCO RLE string"),
        (lambda t: t.set_column(5, "mask_rle", pa.array([""] * 3)), "runs cover 0 pixels"),
        (lambda t: t.set_column(2, "score", pa.array([1, -0.5, 1], pa.float32())), "score -0.5; scores are >= 0"),
        (lambda t: t.set_column(2, "score", pa.array([1, float("nan"), 1], pa.float32())), "score nan"),
        (lambda t: t.set_column(1, "proposal_id", pa.array([0, 1, 0], pa.int32())), r"repeats proposal_id \[0\]"),
        (lambda t: t.set_column(0, "file_name", pa.array(["../a.jpg"] * 3)), "'../a.jpg' is not a path inside"),
        (lambda t: t.set_column(0, "file_name", pa.array(["/etc/a.jpg"] * 3)), "'/etc/a.jpg' is not a path inside"),
        (lambda t: t.set_column(0, "file_name", pa.array([""] * 3)), "'' is not a path inside"),
    ],
)
def test_bad_files_are_refused_naming_the_file_and_the_problem(tmp_path, change, message):
    table = change(pa.Table.from_pylist(good_rows(), schema=PROPOSALS))
    pq.write_table(table, tmp_path / "p.parquet")
    with pytest.raises(ValueError, match=message):
        proposals = read_proposals(tmp_path / "p.parquet", tmp_path / "images")
        proposals.masks("a.jpg")  # masks are checked when decoded


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.parquet: proposals file not found"):
        read_proposals(tmp_path / "nowhere.parquet", tmp_path)
    (tmp_path / "notes.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match="notes.parquet: not a readable Parquet file"):
        read_proposals(tmp_path / "notes.parquet", tmp_path)


def test_benchmark_images_are_matched_by_their_path_in_the_image_folder(tmp_path):
    root = tmp_path / "demo"
    for folder in ("images/validation", "annotations/validation"):
        (root / folder).mkdir(parents=True)
    (root / "classes.json").write_text('["sky", "grass"]')
    for key in ("k1", "k2"):
        Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(root / "images/validation" / f"{key}.jpg")
        Image.fromarray(np.ones((10, 12), np.uint8)).save(root / "annotations/validation" / f"{key}.png")
    dataset = open_benchmark("demo", root)
    assert images_folder(dataset) == root / "images/validation"
    assert benchmark_image_name(dataset, "k1") == "k1.jpg"
    rows = rows_of("k2.jpg", random_masks(2, 10, 12, 3))
    proposals = read_proposals(write(tmp_path / "p.parquet", rows), images_folder(dataset))
    lookup = benchmark_proposals(proposals, dataset)
    assert lookup("k1") is None and lookup("k2")[0].shape == (2, 10, 12)
    with pytest.raises(ValueError, match="benchmark 'memory' does not say where its image files are"):
        images_folder(MemoryDataset("memory", ["sky"], []))
