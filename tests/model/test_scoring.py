"""Pure scoring functions of the two-stage segmenter on hand-computed cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model.scoring import (
    adapter_ensemble,
    clip_class_probs,
    ensemble,
    ensemble_exponents,
    predict_labels,
    proposer_class_probs,
    resize_labels,
    scores_to_labels,
    semantic_map,
    zsseg_exponents,
)

P_PROP = torch.tensor([[0.9, 0.1], [0.4, 0.6]])
P_CLIP = torch.tensor([[0.1, 0.9], [0.9, 0.1]])


def test_proposer_class_probs_drops_no_object_after_softmax():
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 5.0]])
    probs = proposer_class_probs(logits)
    full = logits.softmax(-1)
    assert probs.shape == (2, 2)
    torch.testing.assert_close(probs, full[:, :2])
    torch.testing.assert_close(probs.sum(-1), 1 - full[:, 2])
    assert proposer_class_probs(torch.zeros(3, 4, 6)).shape == (3, 4, 5)
    with pytest.raises(ValueError, match="C\\+1"):
        proposer_class_probs(torch.zeros(4, 1))


def test_clip_class_probs_softmax_of_scaled_cosine_and_uniform_for_invalid():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(3, 8, generator=g)
    txt = torch.randn(4, 8, generator=g)
    valid = torch.tensor([True, False, True])
    probs = clip_class_probs(img * 3.0, txt, logit_scale=50.0, valid=valid)
    cos = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    expected = (50.0 * cos).softmax(-1)
    torch.testing.assert_close(probs[valid], expected[valid])
    assert torch.equal(probs[1], torch.full((4,), 0.25))
    # A tensor scale works the same as a float.
    torch.testing.assert_close(clip_class_probs(img, txt, torch.tensor(50.0), valid), probs)
    with pytest.raises(ValueError, match="share D"):
        clip_class_probs(img, txt[:, :4])


def test_ensemble_lambda_zero_and_one_are_exactly_one_branch():
    g = torch.Generator().manual_seed(1)
    p_prop = torch.rand(5, 3, generator=g)
    p_clip = torch.rand(5, 3, generator=g)
    assert torch.equal(ensemble(p_prop, p_clip, 0.0), p_prop)
    assert torch.equal(ensemble(p_prop, p_clip, 1.0), p_clip)
    # Zero probabilities stay exact too (0 ** 0 == 1).
    p_prop[0, 0] = 0.0
    assert torch.equal(ensemble(p_prop, p_clip, 1.0), p_clip)


def test_ensemble_hand_case():
    out = ensemble(P_PROP, P_CLIP, 0.5)
    expected = torch.tensor([[0.3, 0.3], [0.6, 0.06**0.5]])
    torch.testing.assert_close(out, expected)
    out = ensemble(torch.tensor([[0.25]]), torch.tensor([[1.0]]), 0.5)
    torch.testing.assert_close(out, torch.tensor([[0.5]]))


def test_ensemble_seen_unseen_exponents():
    seen = torch.tensor([True, False])
    # Seen column from the proposer alone, unseen column from CLIP alone.
    out = ensemble(P_PROP, P_CLIP, 0.3, seen=seen, lam_seen=0.0, lam_unseen=1.0)
    torch.testing.assert_close(out, torch.tensor([[0.9, 0.9], [0.4, 0.1]]))
    # Only lam_seen given: unseen classes keep lam.
    out = ensemble(P_PROP, P_CLIP, 1.0, seen=[True, False], lam_seen=0.5)
    torch.testing.assert_close(out, torch.tensor([[0.3, 0.9], [0.6, 0.1]]))
    assert ensemble_exponents(3, 0.7, torch.tensor([True, False, True]), lam_seen=0.3).tolist() == pytest.approx(
        [0.3, 0.7, 0.3]
    )
    with pytest.raises(ValueError, match="seen mask"):
        ensemble(P_PROP, P_CLIP, 0.5, lam_seen=0.2)
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        ensemble(P_PROP, P_CLIP, 1.5)


def test_zsseg_ensemble_swaps_the_exponents_of_seen_and_unseen_classes():
    assert zsseg_exponents(0.8) == pytest.approx((0.2, 0.8))
    seen = torch.tensor([True, False])
    lam_seen, lam_unseen = zsseg_exponents(0.8)
    out = ensemble(P_PROP, P_CLIP, 0.7, seen=seen, lam_seen=lam_seen, lam_unseen=lam_unseen)
    # seen: p_prop^0.8 * p_clip^0.2; unseen: p_prop^0.2 * p_clip^0.8
    expected = torch.stack([P_PROP[:, 0] ** 0.8 * P_CLIP[:, 0] ** 0.2, P_PROP[:, 1] ** 0.2 * P_CLIP[:, 1] ** 0.8], 1)
    torch.testing.assert_close(out, expected)
    # Swapping which class is seen swaps the exponents.
    swapped = ensemble(P_PROP, P_CLIP, 0.7, seen=~seen, lam_seen=lam_seen, lam_unseen=lam_unseen)
    torch.testing.assert_close(swapped[:, 0], P_PROP[:, 0] ** 0.2 * P_CLIP[:, 0] ** 0.8)
    with pytest.raises(ValueError, match="zsseg lam"):
        zsseg_exponents(1.2)


# Two proposals, three classes, 2x2 masks; pixel (1, 1) is covered by neither.
CLASS_PROBS = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
MASKS = torch.tensor([[[1.0, 0.0], [0.5, 0.0]], [[0.0, 1.0], [0.5, 0.0]]])


def test_semantic_map_and_argmax_hand_case():
    scores = semantic_map(CLASS_PROBS, MASKS)
    assert scores.shape == (3, 2, 2)
    torch.testing.assert_close(scores[:, 1, 0], torch.tensor([0.4, 0.15, 0.45]))
    labels = predict_labels(CLASS_PROBS, MASKS)
    assert labels.dtype == torch.int64
    assert labels.tolist() == [[0, 2], [2, -1]]


def test_predict_labels_resizes_scores_bilinearly():
    labels = predict_labels(CLASS_PROBS, MASKS, size=(4, 4))
    assert labels.shape == (4, 4)
    # Corners reproduce the source pixels exactly (align_corners=False clamps at the border).
    assert labels[0, 0] == 0 and labels[0, 3] == 2 and labels[3, 0] == 2 and labels[3, 3] == -1
    # (0, 1) blends 3/4 of pixel (0, 0) with 1/4 of (0, 1): [0.55, 0.175, 0.275] -> class 0.
    assert labels[0, 1] == 0
    # Bilinear scores, not nearest labels: (3, 2) lies between a covered and the empty pixel.
    assert labels[3, 2] == 2


def test_batched_semantic_map_equals_per_item():
    g = torch.Generator().manual_seed(2)
    cp = torch.rand(2, 4, 3, generator=g)
    mp = torch.rand(2, 4, 5, 6, generator=g)
    batched = predict_labels(cp, mp, size=(10, 12))
    for i in range(2):
        assert torch.equal(batched[i], predict_labels(cp[i], mp[i], size=(10, 12)))


def test_scores_ties_go_to_smaller_class_and_resize_labels_nearest():
    assert scores_to_labels(torch.ones(3, 1, 1)).item() == 0
    labels = torch.tensor([[0, 1], [2, -1]])
    up = resize_labels(labels, (4, 4))
    assert up.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, -1, -1], [2, 2, -1, -1]]
    assert resize_labels(up, (2, 2)).tolist() == labels.tolist()


def test_predict_labels_in_row_bands_equals_one_shot():
    g = torch.Generator().manual_seed(3)
    cp = torch.rand(5, 4, generator=g)
    mp = torch.rand(5, 11, 9, generator=g)
    mp[:, 4:6] = 0.0  # rows without evidence stay -1 in every band
    one_shot = predict_labels(cp, mp, max_elements=10**9)
    banded = predict_labels(cp, mp, max_elements=4 * 9 * 2)  # two rows per band
    assert torch.equal(banded, one_shot)
    assert (one_shot[4:6] == -1).all()


def test_adapter_ensemble_follows_mask_adapter():
    generator = torch.Generator().manual_seed(0)
    full = torch.rand(3, 5, generator=generator).softmax(-1)  # proposer softmax over C + void
    p_prop, objectness = full[:, :4], 1 - full[:, 4:]
    p_out = torch.rand(3, 4, generator=generator).softmax(-1)
    seen = torch.tensor([True, True, False, False])
    got = adapter_ensemble(p_prop, p_out, 0.7, 0.9, seen)
    p_in = p_prop / p_prop.sum(-1, keepdim=True)
    exponents = torch.tensor([0.7, 0.7, 0.9, 0.9])
    product = p_in ** (1 - exponents) * p_out**exponents
    assert torch.allclose(got, product / product.sum(-1, keepdim=True) * objectness, atol=1e-6)
    # alpha = beta = 1: CLIP's classes, the proposer's objectness; 0: the proposer alone.
    assert torch.allclose(adapter_ensemble(p_prop, p_out, 1.0, 1.0, seen), p_out * objectness, atol=1e-6)
    assert torch.allclose(adapter_ensemble(p_prop, p_out, 0.0, 0.0), p_prop, atol=1e-6)
    # Without a seen mask every class is unseen (beta).
    assert torch.allclose(adapter_ensemble(p_prop, p_out, 0.2, 0.9), adapter_ensemble(p_prop, p_out, 0.9, 0.9, seen))
    with pytest.raises(ValueError, match="same shape"):
        adapter_ensemble(p_prop, p_out[:2], 0.7, 0.9)
