"""Proposal recall and oracle mIoU on hand-built masks, and the benchmark loop on a tiny proposer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.proposer import Vocabulary, build_proposer, load_proposer_config
from pipeline.datasets.segmentation import Sample
from pipeline.evaluation.proposal_quality import (
    QualityAccumulator,
    QualityConfig,
    RecallCounter,
    best_ious,
    evaluate_proposals,
    format_report,
    segment_ious,
)
from tests.doubles import MemoryDataset


def scene() -> np.ndarray:
    """8×8 labels: class 0 on the top half, class 2 bottom-left quarter, ignore bottom-right."""
    gt = np.zeros((8, 8), np.int32)
    gt[4:, :4] = 2
    gt[4:, 4:] = -1
    return gt


def masks_from(*boxes: tuple[int, int, int, int]) -> torch.Tensor:
    out = torch.zeros(len(boxes), 8, 8, dtype=torch.bool)
    for i, (r0, r1, c0, c1) in enumerate(boxes):
        out[i, r0:r1, c0:c1] = True
    return out


def test_segment_ious_are_exact_and_ignore_pixels_do_not_count() -> None:
    # proposal 0: the top half exactly; 1: the bottom half (half of it on ignore pixels); 2: empty
    masks = masks_from((0, 4, 0, 8), (4, 8, 0, 8), (0, 0, 0, 0))
    classes, iou = segment_ious(masks, scene())
    assert classes.tolist() == [0, 2]
    assert iou[0].tolist() == [1.0, 0.0, 0.0]
    assert iou[1].tolist() == [0.0, 1.0, 0.0]  # the ignored quarter is not counted against proposal 1
    shifted = masks_from((0, 2, 0, 8))  # covers half of segment 0
    assert segment_ious(shifted, scene())[1][:, 0].tolist() == [0.5, 0.0]


def test_best_ious_respects_the_kept_queries() -> None:
    masks = masks_from((0, 4, 0, 8), (4, 8, 0, 4))
    _, best = best_ious(masks, scene())
    assert best.tolist() == [1.0, 1.0]
    _, best = best_ious(masks, scene(), keep=torch.tensor([False, True]))
    assert best.tolist() == [0.0, 1.0]
    _, best = best_ious(masks, scene(), keep=torch.tensor([False, False]))
    assert best.tolist() == [0.0, 0.0]


def test_segment_ious_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="bool"):
        segment_ious(torch.zeros(1, 8, 8), scene())
    with pytest.raises(ValueError, match="do not match"):
        segment_ious(torch.zeros(1, 4, 4, dtype=torch.bool), scene())


def test_recall_counter_pools_segments_over_subsets() -> None:
    counter = RecallCounter(3, iou_threshold=0.5)
    counter.update(torch.tensor([0, 2]), torch.tensor([0.9, 0.2], dtype=torch.float64))
    counter.update(torch.tensor([0, 1]), torch.tensor([0.5, 0.7], dtype=torch.float64))
    assert counter.recall() == pytest.approx(75.0)  # 3 of 4 segments at IoU >= 0.5
    assert counter.recall(np.array([True, False, False])) == pytest.approx(100.0)
    assert counter.recall(np.array([False, False, True])) == pytest.approx(0.0)
    assert math.isnan(RecallCounter(2, 0.5).recall())
    assert counter.mean_best_iou() == pytest.approx(100 * (0.9 + 0.2 + 0.5 + 0.7) / 4)


def test_accumulator_recall_and_oracle_all_versus_scored() -> None:
    settings = QualityConfig(mask_threshold=0.4, iou_threshold=0.5, score_threshold=0.5)
    acc = QualityAccumulator(3, settings)
    masks = masks_from((0, 4, 0, 8), (4, 8, 0, 4), (0, 0, 0, 0))
    scores = torch.tensor([0.9, 0.1, 0.8])  # the class-2 segment's proposal has a low objectness
    acc.add(masks, masks.float(), scores, scene())
    subsets = {"seen": np.array([True, True, False]), "unseen": np.array([False, False, True])}
    m = acc.metrics(["a", "b", "c"], subsets)
    assert m["segments"] == {"all": 2, "seen": 1, "unseen": 1}
    assert m["recall"] == {"all": 100.0, "seen": 100.0, "unseen": 100.0}
    assert m["recall_scored"] == {"all": 50.0, "seen": 100.0, "unseen": 0.0}
    assert m["proposals_per_image"] == 2 and m["scored_proposals_per_image"] == 1
    # perfect masks with oracle labels: every scored pixel right
    assert m["oracle"]["mIoU"] == 100.0 and m["oracle"]["pACC"] == 100.0
    # without the class-2 proposal its pixels get no prediction: class 2 IoU 0, class 0 still 100
    assert m["oracle_scored"]["mIoU"] == 50.0 and m["oracle_scored"]["mIoU_unseen"] == 0.0
    assert m["per_class"] == {
        "a": {"segments": 1, "recall": 100.0, "recall_scored": 100.0},
        "c": {"segments": 1, "recall": 100.0, "recall_scored": 0.0},
    }


def test_oracle_uses_the_soft_masks_to_split_overlaps() -> None:
    acc = QualityAccumulator(3, QualityConfig())
    big = masks_from((0, 8, 0, 8))[0]
    probs = torch.stack([big.float() * 0.6, masks_from((4, 8, 0, 4))[0].float() * 0.9])
    masks = probs > 0.4
    acc.add(masks, probs, torch.ones(2), scene())
    m = acc.metrics(["a", "b", "c"], {})
    # the big proposal is labelled 0 (most of its scored pixels), the small one 2 and wins where it is stronger
    assert m["oracle"]["mIoU"] == 100.0
    # the big mask meets segment 0 with IoU 32/48 (its 16 ignored pixels do not count)
    assert m["recall"] == {"all": 100.0}
    assert m["mean_best_iou"]["all"] == pytest.approx(100 * (32 / 48 + 1) / 2, abs=0.01)


def tiny_benchmark() -> MemoryDataset:
    """Two 32-px images: sky above grass, a dog square."""
    rng = np.random.default_rng(0)
    samples = []
    for key in ("b", "a"):
        label = np.zeros((32, 32), np.int32)
        label[16:] = 1
        label[4:12, 4:12] = 2
        samples.append(Sample(key, rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), label))
    return MemoryDataset("tiny", ["sky, air", "grass", "dog"], samples)


def tiny_proposer():
    torch.manual_seed(0)
    model = build_proposer(load_proposer_config("proposer-tiny")).eval()
    text = F.normalize(torch.randn(2, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    model.vocabulary = Vocabulary(("sky", "grass"), text)
    return model


def test_evaluate_proposals_reports_every_figure_and_is_deterministic() -> None:
    model, data = tiny_proposer(), tiny_benchmark()
    subsets = {
        "seen": np.array([True, True, False]),
        "unseen": np.array([False, False, True]),
        "things": np.array([False, False, True]),
        "stuff": np.array([True, True, False]),
    }
    report = evaluate_proposals(model, data, QualityConfig(batch_size=1), subsets=subsets)
    m = report.metrics
    assert m["benchmark"] == "tiny" and m["images"] == 2 and m["queries"] == 6
    assert m["segments"] == {"all": 6, "seen": 4, "unseen": 2, "things": 2, "stuff": 4}
    assert set(m["recall"]) == {"all", "seen", "unseen", "things", "stuff"}
    assert set(m["oracle"]) == {"mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "pACC"}
    assert set(m["per_class"]) == {"sky, air", "grass", "dog"}
    assert report.images == 2 and report.inference_seconds > 0
    again = evaluate_proposals(model, data, QualityConfig(batch_size=2), subsets=subsets)
    assert again.metrics == m  # batching does not change any figure
    assert "recall (all queries)" in format_report(report)


def test_evaluate_proposals_needs_a_vocabulary_and_matching_subsets() -> None:
    model = tiny_proposer()
    with pytest.raises(ValueError, match="3 classes"):
        evaluate_proposals(model, tiny_benchmark(), subsets={"seen": np.array([True, False])})
    model.vocabulary = None
    with pytest.raises(ValueError, match="no vocabulary"):
        evaluate_proposals(model, tiny_benchmark())
