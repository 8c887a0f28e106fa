"""ConfusionMatrix against a direct per-class NumPy computation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from model.metrics import ConfusionMatrix, harmonic_mean

K = 7
IGNORE = -1


def reference_figures(preds: list[np.ndarray], gts: list[np.ndarray], k: int, seen: np.ndarray) -> dict:
    """Per-class loops over pixels, written independently of the bincount code."""
    pred = np.concatenate([p.ravel() for p in preds])
    gt = np.concatenate([g.ravel() for g in gts])
    keep = gt != IGNORE
    pred, gt = pred[keep], gt[keep]
    ious, accs, weights = [], [], []
    for c in range(k):
        in_gt = gt == c
        in_pred = pred == c
        inter = np.logical_and(in_gt, in_pred).sum()
        union = np.logical_or(in_gt, in_pred).sum()
        ious.append(inter / union * 100 if union else math.nan)
        accs.append(inter / in_gt.sum() * 100 if in_gt.sum() else math.nan)
        weights.append(in_gt.sum() / gt.size)
    ious_a, accs_a = np.array(ious), np.array(accs)
    valid = ~np.isnan(ious_a)
    m_seen = ious_a[valid & seen].mean()
    m_unseen = ious_a[valid & ~seen].mean()
    return {
        "per_class_iou": ious_a,
        "per_class_acc": accs_a,
        "mIoU": ious_a[valid].mean(),
        "mACC": accs_a[~np.isnan(accs_a)].mean(),
        "pACC": (pred == gt).mean() * 100,
        "fwIoU": sum(w * i for w, i in zip(weights, ious) if w > 0),
        "mIoU_seen": m_seen,
        "mIoU_unseen": m_unseen,
        "hIoU": 2 * m_seen * m_unseen / (m_seen + m_unseen),
    }


def random_maps(seed: int, n: int = 4, shape=(13, 17)) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Label maps where class 5 is never in the ground truth but predicted, class 6 nowhere."""
    rng = np.random.default_rng(seed)
    gts = [
        rng.choice([-1, 0, 1, 2, 3, 4], size=shape, p=[0.1, 0.3, 0.2, 0.2, 0.1, 0.1]).astype(np.int32) for _ in range(n)
    ]
    preds = []
    for g in gts:
        p = np.where(rng.random(shape) < 0.6, np.maximum(g, 0), rng.integers(0, 6, size=shape)).astype(np.int64)
        preds.append(p)
    return preds, gts


SEEN = np.array([True, True, False, True, False, False, True])


def assert_matches(summary: dict, ref: dict) -> None:
    np.testing.assert_allclose(summary["per_class_iou"], ref["per_class_iou"], equal_nan=True)
    np.testing.assert_allclose(summary["per_class_acc"], ref["per_class_acc"], equal_nan=True)
    for key in ("mIoU", "mACC", "pACC", "fwIoU", "mIoU_seen", "mIoU_unseen", "hIoU"):
        assert summary[key] == pytest.approx(ref[key], rel=1e-12), key


def test_matches_per_class_loops_with_ignore_and_absent_classes():
    preds, gts = random_maps(0)
    cm = ConfusionMatrix(K)
    for p, g in zip(preds, gts):
        cm.update(p, g)
    summary = cm.summary(SEEN)
    ref = reference_figures(preds, gts, K, SEEN)
    assert_matches(summary, ref)
    # Class 5: predicted but never in GT -> IoU 0 and it counts; class 6: nowhere -> NaN, left out.
    assert summary["per_class_iou"][5] == 0.0
    assert math.isnan(summary["per_class_iou"][6])
    assert math.isnan(summary["per_class_acc"][5])
    assert summary["valid_classes"] == 6
    assert summary["pixels"] == sum(int((g != IGNORE).sum()) for g in gts)


def test_streaming_in_chunks_equals_one_shot_and_merge():
    preds, gts = random_maps(1, n=6)
    one_shot = ConfusionMatrix(K).update(np.stack(preds), np.stack(gts))
    streamed = ConfusionMatrix(K)
    for p, g in zip(preds, gts):
        streamed.update(p, g)
    left, right = ConfusionMatrix(K), ConfusionMatrix(K)
    for i, (p, g) in enumerate(zip(preds, gts)):
        (left if i % 2 else right).update(p, g)
    assert streamed == one_shot
    assert left + right == one_shot
    left += right
    assert left == one_shot
    assert_matches(left.summary(SEEN), {k: np.asarray(v) for k, v in one_shot.summary(SEEN).items()})


def test_torch_input_equals_numpy_input():
    preds, gts = random_maps(2)
    a, b = ConfusionMatrix(K), ConfusionMatrix(K)
    for p, g in zip(preds, gts):
        a.update(p, g)
        b.update(torch.from_numpy(p), torch.from_numpy(g))
    assert a == b
    # Accelerator tensors are counted with torch.bincount; check that path on CPU tensors.
    for p, g in zip(preds, gts):
        p[0, 0] = IGNORE  # an unpredicted pixel
        np.testing.assert_array_equal(a._counts_torch(torch.from_numpy(p), torch.from_numpy(g)), a._counts_numpy(p, g))


def test_hand_case_and_unpredicted_pixels():
    gt = np.array([[0, 0, 1, -1]])
    pred = np.array([[0, -1, 0, 1]])  # second pixel: no prediction -> a miss for class 0
    cm = ConfusionMatrix(2).update(pred, gt)
    np.testing.assert_array_equal(cm.matrix, [[1, 0], [1, 0]])
    np.testing.assert_array_equal(cm.unpredicted, [1, 0])
    s = cm.summary(np.array([True, False]))
    # class 0: tp 1, gt 2, pred 2 -> IoU 1/3; class 1: tp 0, gt 1, pred 0 -> IoU 0
    assert s["per_class_iou"] == pytest.approx([100 / 3, 0.0])
    assert s["mIoU"] == pytest.approx(50 / 3)
    assert s["pACC"] == pytest.approx(100 / 3)
    assert s["mACC"] == pytest.approx(25.0)
    assert s["fwIoU"] == pytest.approx(2 / 3 * 100 / 3)
    assert s["hIoU"] == 0.0


def test_seen_split_with_an_empty_side_is_nan():
    cm = ConfusionMatrix(3).update(np.array([0, 1]), np.array([0, 1]))
    s = cm.summary(np.array([True, True, False]))  # the only unseen class never occurs
    assert s["mIoU_seen"] == 100.0
    assert math.isnan(s["mIoU_unseen"]) and math.isnan(s["hIoU"])
    assert harmonic_mean(50.0, 100.0) == pytest.approx(200 / 3)


def test_a_distractor_counts_in_the_miou_but_in_neither_split():
    # class 2 names nothing of the world: predicted once, absent from the ground truth
    cm = ConfusionMatrix(3).update(np.array([0, 1, 1, 2]), np.array([0, 1, 1, 1]))
    s = cm.summary(np.array([True, False, False]), unseen=np.array([False, True, False]))
    assert s["per_class_iou"] == pytest.approx([100.0, 200 / 3, 0.0])
    assert s["mIoU"] == pytest.approx((100 + 200 / 3) / 3)  # the standard mIoU: a predicted class counts
    assert s["mIoU_seen"] == 100.0 and s["mIoU_unseen"] == pytest.approx(200 / 3)  # the distractor in neither
    assert s["hIoU"] == pytest.approx(harmonic_mean(100.0, 200 / 3))
    assert cm.summary(np.array([True, False, False]))["mIoU_unseen"] == pytest.approx(100 / 3)  # default: not seen
    with pytest.raises(ValueError, match="both seen and unseen"):
        cm.summary(np.array([True, False, False]), unseen=np.array([True, True, False]))


def test_empty_matrix_gives_nan_means():
    s = ConfusionMatrix(3).summary()
    assert math.isnan(s["mIoU"]) and math.isnan(s["pACC"]) and s["pixels"] == 0


def test_json_round_trip():
    preds, gts = random_maps(3)
    cm = ConfusionMatrix(K)
    for p, g in zip(preds, gts):
        cm.update(p, g)
    assert ConfusionMatrix.from_dict(json.loads(json.dumps(cm.to_dict()))) == cm


@pytest.mark.parametrize(
    "pred, gt, message",
    [
        (np.array([0, 1]), np.array([0, 3]), "ground truth has labels outside"),
        (np.array([0, 5]), np.array([0, 1]), "prediction has labels outside"),
        (np.array([0, 1]), np.array([0, 1, 1]), "shape"),
        (np.array([0.0, 1.0]), np.array([0, 1]), "integer"),
        (torch.tensor([0, -2]), torch.tensor([0, 1]), "prediction has labels outside"),
    ],
)
def test_bad_input_is_refused(pred, gt, message):
    with pytest.raises(ValueError, match=message):
        ConfusionMatrix(3).update(pred, gt)


def test_incompatible_merge_and_bad_seen_are_refused():
    with pytest.raises(ValueError, match="cannot merge"):
        ConfusionMatrix(3) + ConfusionMatrix(4)
    with pytest.raises(ValueError, match="length 3"):
        ConfusionMatrix(3).summary(np.array([True, False]))
    with pytest.raises(ValueError, match="collides"):
        ConfusionMatrix(3, ignore_index=2)


def test_ignore_value_255_for_uint8_maps():
    gt = np.array([[0, 255], [1, 1]], dtype=np.uint8)
    pred = np.array([[0, 0], [1, 0]], dtype=np.uint8)
    cm = ConfusionMatrix(2, ignore_index=255).update(pred, gt)
    np.testing.assert_array_equal(cm.matrix, [[1, 0], [1, 1]])
