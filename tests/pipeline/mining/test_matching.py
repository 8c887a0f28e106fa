"""Mining's pure parts: best region per noun, softmax, margin, pair filters, usable regions and mask NMS."""

from __future__ import annotations

import math

import pytest
import torch

from model.precision import inference_autocast
from pipeline.mining.config import MiningConfig
from pipeline.mining.matching import kept_nouns, match_nouns_to_regions, pair_filter, similarity_matrix
from pipeline.mining.regions import mask_nms, usable_regions

# Low-precision runs: bf16 asked for explicitly, or auto resolved on a bf16 CPU.
pytestmark = pytest.mark.usefixtures("native_numerics")

# 3 nouns × 4 regions, cosine similarities.
SIMILARITY = torch.tensor(
    [
        [0.30, 0.10, 0.25, 0.00],  # noun 0: region 0, runner-up region 2
        [0.20, 0.20, 0.10, 0.05],  # noun 1: tie of regions 0 and 1 → region 0, margin 0
        [0.00, 0.05, 0.10, 0.40],  # noun 2: region 3
    ]
)


def test_best_region_similarity_and_margin():
    match = match_nouns_to_regions(SIMILARITY, logit_scale=10.0)
    assert match.region.tolist() == [0, 0, 3]
    assert match.similarity.tolist() == pytest.approx([0.30, 0.20, 0.40])
    assert match.margin.tolist() == pytest.approx([0.05, 0.0, 0.30])


def test_softmax_is_over_the_nouns_for_the_chosen_region():
    scale = 10.0
    match = match_nouns_to_regions(SIMILARITY, logit_scale=scale)
    column0 = [math.exp(scale * s) for s in (0.30, 0.20, 0.00)]
    column3 = [math.exp(scale * s) for s in (0.00, 0.05, 0.40)]
    expected = [column0[0] / sum(column0), column0[1] / sum(column0), column3[2] / sum(column3)]
    assert match.softmax.tolist() == pytest.approx(expected, rel=1e-5)
    # A higher temperature (lower scale) flattens the softmax towards 1 / nouns.
    flat = match_nouns_to_regions(SIMILARITY, logit_scale=1e-6)
    assert flat.softmax.tolist() == pytest.approx([1 / 3] * 3, rel=1e-4)


def test_single_region_has_no_margin():
    match = match_nouns_to_regions(torch.tensor([[0.2], [0.1]]), logit_scale=100.0)
    assert match.region.tolist() == [0, 0]
    assert torch.isnan(match.margin).all()
    assert match.softmax.sum().item() == pytest.approx(1.0)


def test_match_refuses_bad_inputs():
    with pytest.raises(ValueError, match="nouns, regions"):
        match_nouns_to_regions(torch.zeros(0, 3), 10.0)
    with pytest.raises(ValueError, match="logit_scale"):
        match_nouns_to_regions(SIMILARITY, 0.0)


def test_filters_drop_by_reason():
    match = match_nouns_to_regions(SIMILARITY, logit_scale=10.0)
    assert pair_filter(match, MiningConfig()) == {}
    assert kept_nouns(match, MiningConfig()).tolist() == [True, True, True]
    settings = MiningConfig(min_similarity=0.25, min_margin=0.01, min_softmax=0.0)
    dropped = pair_filter(match, settings)
    assert sorted(dropped) == ["margin", "similarity", "softmax"]
    assert dropped["similarity"].tolist() == [False, True, False]
    assert dropped["margin"].tolist() == [False, True, False]
    assert dropped["softmax"].tolist() == [False, False, False]
    assert kept_nouns(match, settings).tolist() == [True, False, True]
    # Without a runner-up region a margin filter drops the noun.
    single = match_nouns_to_regions(torch.tensor([[0.9]]), logit_scale=10.0)
    assert kept_nouns(single, MiningConfig(min_margin=0.0)).tolist() == [False]
    assert kept_nouns(single, MiningConfig(min_softmax=0.5)).tolist() == [True]


def test_settings_validation_names_the_problem():
    with pytest.raises(ValueError, match="mask_threshold"):
        MiningConfig(mask_threshold=1.5)
    with pytest.raises(ValueError, match="min_area_pixels"):
        MiningConfig(min_area_pixels=0)
    with pytest.raises(ValueError, match="nms_iou"):
        MiningConfig(nms_iou=0.0)
    with pytest.raises(ValueError, match="images_per_batch"):
        MiningConfig(images_per_batch=True)
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16, got 'fp16'"):
        MiningConfig(precision="fp16")
    with pytest.raises(ValueError, match=r"max_proposals must be null or an integer >= 1, got 0"):
        MiningConfig(max_proposals=0)
    assert MiningConfig(min_area_pixels=10, min_area_fraction=0.01).min_area(100, 100) == 100
    assert MiningConfig(min_area_pixels=10, min_area_fraction=0.0).min_area(100, 100) == 10


def _box(height: int, width: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_mask_nms():
    a = _box(10, 10, 0, 10, 0, 5)  # 50 px
    b = _box(10, 10, 0, 10, 0, 4)  # 40 px inside a: IoU 0.8
    c = _box(10, 10, 0, 10, 5, 10)  # disjoint from a
    masks = torch.stack([a, b, c])
    # b scores higher than a: b is kept, a (IoU 0.8 with b) dropped at 0.75, kept at 0.9.
    scores = torch.tensor([0.5, 0.9, 0.1])
    assert mask_nms(masks, scores, 0.75).tolist() == [1, 2]
    assert mask_nms(masks, scores, 0.9).tolist() == [0, 1, 2]
    # Equal scores: the lower index wins.
    assert mask_nms(masks, torch.tensor([0.5, 0.5, 0.5]), 0.75).tolist() == [0, 2]


def test_usable_regions_threshold_area_score_and_nms():
    probs = torch.zeros(4, 10, 10)
    probs[0, :, :5] = 0.9  # 50 px, kept
    probs[1, :, :4] = 0.8  # 40 px, duplicate of 0 (IoU 0.8)
    probs[2, :2, 5:] = 0.45  # 10 px: below min_area_pixels 16
    probs[3, :, 5:] = 0.3  # below the mask threshold: empty
    scores = torch.tensor([0.7, 0.6, 0.9, 0.9])
    regions = usable_regions(probs, scores, MiningConfig(mask_threshold=0.4, min_area_pixels=16, nms_iou=0.75))
    assert regions.proposal_ids.tolist() == [0]
    assert regions.areas.tolist() == [50] and regions.scores.tolist() == pytest.approx([0.7])
    assert regions.masks.shape == (1, 10, 10) and regions.masks.dtype == torch.bool
    no_nms = usable_regions(probs, scores, MiningConfig(min_area_pixels=16, nms_iou=None))
    assert no_nms.proposal_ids.tolist() == [0, 1]
    by_score = usable_regions(probs, scores, MiningConfig(min_area_pixels=1, min_proposal_score=0.65, nms_iou=None))
    assert by_score.proposal_ids.tolist() == [0, 2]
    by_fraction = usable_regions(probs, scores, MiningConfig(min_area_pixels=1, min_area_fraction=0.45, nms_iou=None))
    assert by_fraction.proposal_ids.tolist() == [0]
    assert len(usable_regions(probs, scores, MiningConfig(min_proposal_score=1.0))) == 0


def test_max_proposals_keeps_the_best_scored_regions_after_nms():
    probs = torch.zeros(5, 10, 10)
    probs[0, :, :5] = 0.9  # 50 px
    probs[1, :, :4] = 0.8  # duplicate of 0 (IoU 0.8), dropped by NMS before the cap
    probs[2, :3, 5:] = 0.9  # 15 px
    probs[3, 3:6, 5:] = 0.9  # 15 px
    probs[4, 6:, 5:] = 0.9  # 20 px
    scores = torch.tensor([0.5, 0.95, 0.8, 0.6, 0.8])
    settings = MiningConfig(min_area_pixels=1, nms_iou=0.75)
    everything = usable_regions(probs, scores, settings)
    assert everything.proposal_ids.tolist() == [1, 2, 3, 4]
    assert (
        usable_regions(
            probs, scores, MiningConfig(min_area_pixels=1, nms_iou=0.75, max_proposals=None)
        ).proposal_ids.tolist()
        == everything.proposal_ids.tolist()
    )
    capped = usable_regions(probs, scores, MiningConfig(min_area_pixels=1, nms_iou=0.75, max_proposals=2))
    # After NMS: 1 (0.95), 2 (0.8), 3 (0.6), 4 (0.8); the best two: 1 and 2 (tie with 4: lower id), in id order.
    assert capped.proposal_ids.tolist() == [1, 2]
    assert capped.scores.tolist() == pytest.approx([0.95, 0.8]) and capped.masks.shape == (2, 10, 10)
    assert torch.equal(capped.masks, everything.masks[[0, 1]])


def test_nms_and_similarities_stay_float32_under_bf16_autocast():
    masks = torch.zeros(2, 900, dtype=torch.bool)
    masks[0, :310] = True
    masks[1, :301] = True  # inside: IoU 301/310 ≈ 0.971 (bf16 has no 301)
    masks = masks.view(2, 30, 30)
    generator = torch.Generator().manual_seed(0)
    nouns = torch.nn.functional.normalize(torch.randn(3, 16, generator=generator), dim=-1)
    regions = torch.nn.functional.normalize(torch.randn(4, 16, generator=generator), dim=-1)
    scores = torch.tensor([0.9, 0.8])
    with inference_autocast("bf16", torch.device("cpu")):
        kept = [mask_nms(masks, scores, threshold).tolist() for threshold in (0.9705, 0.9715)]
        similarity = similarity_matrix(nouns, regions)
    assert kept == [[0], [0, 1]]
    assert similarity.dtype == torch.float32 and torch.equal(similarity, nouns @ regions.T)
