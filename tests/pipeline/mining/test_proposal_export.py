"""Rows of `ovseg propose`: one per non-empty proposal, with RLE, bbox, area and the best class."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from core.rle import decode_rle
from pipeline.datasets.proposal_table import PROPOSALS, mask_bbox, proposal_rows, write_table
from pipeline.mining.proposal_export import list_images


def test_rows_skip_empty_and_low_scoring_proposals() -> None:
    masks = torch.zeros(3, 6, 5, dtype=torch.bool)
    masks[0, 1:3, 2:5] = True
    masks[2, 4:, :1] = True
    scores = torch.tensor([0.9, 0.8, 0.2])
    class_probs = torch.tensor([[0.1, 0.8], [0.5, 0.3], [0.15, 0.05]])
    rows = proposal_rows("a.jpg", masks, scores, class_probs, ["cat", "dog"])
    assert [r["proposal_id"] for r in rows] == [0, 2]  # proposal 1 is empty
    first = rows[0]
    assert (first["class_name"], first["height"], first["width"], first["area"]) == ("dog", 6, 5, 6)
    assert first["bbox"] == [2.0, 1.0, 3.0, 2.0]
    assert first["class_prob"] == pytest.approx(0.8) and first["score"] == pytest.approx(0.9)
    assert (decode_rle({"size": [6, 5], "counts": first["mask_rle"]}) == masks[0].numpy()).all()
    assert [r["proposal_id"] for r in proposal_rows("a.jpg", masks, scores, class_probs, ["cat", "dog"], 0.5)] == [0]


def test_mask_bbox_and_empty_mask() -> None:
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[3, 3] = True
    assert mask_bbox(mask.numpy()) == [3.0, 3.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="empty"):
        mask_bbox(torch.zeros(4, 4, dtype=torch.bool).numpy())


def test_list_images_and_table_round_trip(tmp_path) -> None:
    (tmp_path / "b.PNG").write_bytes(b"")
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    assert list_images(tmp_path) == ["a.jpg", "b.PNG"]
    with pytest.raises(ValueError, match="no images"):
        list_images(tmp_path / "sub")
    with pytest.raises(FileNotFoundError, match="not found"):
        list_images(tmp_path / "missing")
    masks = torch.ones(1, 2, 2, dtype=torch.bool)
    rows = proposal_rows("a.jpg", masks, torch.tensor([0.5]), torch.tensor([[0.5]]), ["cat"])
    path = write_table(pa.Table.from_pylist(rows, schema=PROPOSALS), tmp_path / "out/p.parquet")
    assert pq.read_table(path).to_pylist() == [{**rows[0], "score": 0.5, "class_prob": 0.5}]
