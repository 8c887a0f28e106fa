"""Oracle diagnostics on a hand-built 8x8 image with two squares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.oracle import gt_segments, one_hot_class_probs, oracle_proposal_labels, oracle_semantic_map, paint_segments
from model.scoring import scores_to_labels


def two_squares() -> np.ndarray:
    """Background 0, a 3x3 square of class 1, a 4x4 square of class 2, an ignored column."""
    gt = np.zeros((8, 8), dtype=np.int32)
    gt[1:4, 1:4] = 1
    gt[4:8, 4:8] = 2
    gt[:, 0] = -1
    return gt


def box(r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
    m = torch.zeros(8, 8, dtype=torch.bool)
    m[r0:r1, c0:c1] = True
    return m


def test_oracle_proposal_labels_by_majority_overlap():
    masks = torch.stack(
        [
            box(1, 4, 1, 5),  # square 1 (9 px) + 3 background px -> 1
            box(3, 8, 3, 8),  # 16 px of square 2 + background -> 2
            box(0, 8, 0, 1),  # only ignored pixels -> no label
            box(0, 0, 0, 0),  # empty -> no label
            box(3, 5, 3, 5),  # 1 px class 1, 2 px background, 1 px class 2 -> 0
            box(4, 6, 3, 5),  # 2 px background, 2 px class 2: tie -> smaller index 0
        ]
    )
    labels = oracle_proposal_labels(masks, two_squares())
    assert labels.dtype == torch.int64
    assert labels.tolist() == [1, 2, -1, -1, 0, 0]
    # Float masks count as inside above 0.5.
    assert oracle_proposal_labels(masks.float() * 0.9, torch.from_numpy(two_squares())).tolist() == labels.tolist()


def test_oracle_semantic_map_paints_each_proposal_with_its_class():
    gt = two_squares()
    masks = torch.stack([box(1, 4, 1, 4), box(4, 8, 4, 8), box(0, 1, 0, 8), box(0, 8, 0, 1)])
    scores = oracle_semantic_map(masks, gt, num_classes=3)
    assert scores.shape == (3, 8, 8)
    labels = scores_to_labels(scores)
    expected = np.full((8, 8), -1)
    expected[1:4, 1:4] = 1
    expected[4:8, 4:8] = 2
    # The top-row proposal is background (its ignored first pixel does not vote) and
    # paints its whole row; the left-column one covers only ignored pixels: no label.
    expected[0, :] = 0
    assert labels.numpy().tolist() == expected.tolist()


def test_oracle_semantic_map_weights_by_soft_masks():
    gt = two_squares()
    masks = torch.stack([box(1, 4, 1, 4), box(1, 8, 1, 8)])  # labels 1 and 0 (majority background)
    soft = masks.float() * torch.tensor([0.9, 0.6])[:, None, None]
    scores = oracle_semantic_map(masks, gt, num_classes=3, mask_probs=soft)
    assert scores[1, 2, 2] == pytest.approx(0.9) and scores[0, 2, 2] == pytest.approx(0.6)
    assert scores[0, 6, 6] == pytest.approx(0.6) and scores[2].abs().sum() == 0
    with pytest.raises(ValueError, match="must match"):
        oracle_semantic_map(masks, gt, 3, mask_probs=soft[:1])


def test_gt_segments_round_trip_through_paint():
    gt = two_squares()
    classes, segments = gt_segments(gt)
    assert classes.tolist() == [0, 1, 2]
    assert segments.shape == (3, 8, 8) and segments.dtype == torch.bool
    assert segments.sum().item() == int((gt != -1).sum())
    assert paint_segments(segments, classes).numpy().tolist() == gt.tolist()
    # Painting with other labels (e.g. a classifier's) keeps ignore pixels at -1.
    painted = paint_segments(segments, torch.tensor([2, 2, 0]))
    assert painted[2, 2] == 2 and painted[6, 6] == 0 and painted[3, 0] == -1


def test_one_hot_rows_and_bad_input():
    probs = one_hot_class_probs(torch.tensor([2, -1, 0]), 3)
    assert probs.tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match="-1..2"):
        one_hot_class_probs(torch.tensor([3]), 3)
    with pytest.raises(ValueError, match="do not match gt"):
        oracle_proposal_labels(torch.zeros(2, 4, 4, dtype=torch.bool), two_squares())
    with pytest.raises(ValueError, match="integers"):
        gt_segments(np.zeros((2, 2), dtype=np.float32))
