"""TwoStageSegmenter wired to a randomly initialised tiny proposer and tiny CLIP."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model.crops import masked_crops
from model.mpt import MaskPrompts
from model.one_pass import OnePassSegmenter
from model.oracle import gt_segments, oracle_semantic_map
from model.proposal_segmenter import image_to_tensor
from model.proposer import build_proposer, load_proposer_config
from model.scoring import ensemble, predict_labels, scores_to_labels
from model.two_stage import TwoStageSegmenter
from tests.doubles import label_map

# Low-precision runs: bf16 asked for explicitly, or auto resolved on a bf16 CPU.
pytestmark = pytest.mark.usefixtures("native_numerics")

NAMES = ["cat", "dog, puppy", "sky", "grass"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)


def test_segment_gives_a_label_map_of_the_image_size(proposer, tiny_clip, image):
    seg = TwoStageSegmenter(proposer, tiny_clip, lam=0.7, mask_threshold=0.5)
    labels = seg.segment(image, NAMES)
    assert labels.shape == (40, 56) and labels.dtype == np.int32
    assert labels.min() >= 0 and labels.max() < len(NAMES)
    # The same image as a float [3, H, W] tensor, with precomputed text embeddings.
    as_tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    assert np.array_equal(seg.segment(as_tensor, NAMES, text_emb=seg.text_embeddings(NAMES)), labels)


def test_batch_equals_single_images(proposer, tiny_clip, image):
    seg = TwoStageSegmenter(proposer, tiny_clip)
    other = np.ascontiguousarray(image[:32, :48])
    batch = seg.segment_batch([image, image[::-1], other], NAMES)
    assert [b.shape for b in batch] == [(40, 56), (40, 56), (32, 48)]
    for got, single in zip(batch, [image, np.ascontiguousarray(image[::-1]), other]):
        assert np.array_equal(got, seg.segment(single, NAMES))


def test_lambda_zero_is_the_proposer_alone(proposer, tiny_clip, image):
    seg = TwoStageSegmenter(proposer, tiny_clip, lam=0.0)
    text = seg.text_embeddings(NAMES)
    props = seg.propose(image_to_tensor(image, CPU)[None], text)
    expected = predict_labels(props.class_probs[0], props.mask_probs[0]).numpy()
    assert np.array_equal(seg.segment(image, NAMES), expected)


def test_segment_composes_crops_of_binary_masks_with_soft_mask_map(proposer, tiny_clip, image):
    seg = TwoStageSegmenter(proposer, tiny_clip, lam=0.7, lam_seen=0.2, mask_threshold=0.5)
    text = seg.text_embeddings(NAMES)
    tensor = image_to_tensor(image, CPU)
    props = seg.propose(tensor[None], text)
    assert torch.equal(props.masks[0], props.mask_probs[0] > 0.5)
    p_clip = seg.clip_probs([tensor], [props.masks[0]], text)[0]
    seen = [True, True, False, False]
    probs = ensemble(props.class_probs[0], p_clip, 0.7, seen, lam_seen=0.2)
    expected = predict_labels(probs, props.mask_probs[0]).numpy()
    assert np.array_equal(seg.segment(image, NAMES, seen=seen), expected)


def test_clip_probs_use_mask_prompts_when_present(proposer, tiny_clip, image):
    plain = TwoStageSegmenter(proposer, tiny_clip, mask_threshold=0.5)
    text = plain.text_embeddings(NAMES)
    tensor = image_to_tensor(image, CPU)
    masks = torch.from_numpy(gt_segments(label_map())[1].numpy())
    base = plain.clip_probs([tensor], [masks], text)[0]
    assert base.shape == (masks.shape[0], len(NAMES))
    torch.testing.assert_close(base.sum(-1), torch.ones(masks.shape[0]))
    prompted_clip = dataclasses.replace(tiny_clip)
    prompted_clip.prompts = MaskPrompts.for_visual(
        tiny_clip.model.visual, 2, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        prompted_clip.prompts.prompts.mul_(50)  # make the prompts' effect unmistakable
    prompted = TwoStageSegmenter(proposer, prompted_clip).clip_probs([tensor], [masks], text)[0]
    unprompted = TwoStageSegmenter(proposer, prompted_clip, use_mask_prompts=False).clip_probs([tensor], [masks], text)[
        0
    ]
    torch.testing.assert_close(unprompted, base)
    assert not torch.allclose(prompted, base)
    # An empty mask gets the uniform distribution.
    empty = torch.zeros(1, *masks.shape[1:], dtype=torch.bool)
    uniform = plain.clip_probs([tensor], [torch.cat([masks, empty])], text)[0][-1]
    assert torch.equal(uniform, torch.full((len(NAMES),), 1 / len(NAMES)))


def test_classify_gt_segments_recovers_labels_with_matching_text(proposer, tiny_clip, image):
    """Text embeddings equal to each segment's own crop embedding make CLIP's answer known."""
    seg = TwoStageSegmenter(proposer, tiny_clip, expand_ratio=0.1)
    gt = label_map()
    classes, segments = gt_segments(gt)
    crops = masked_crops(
        image_to_tensor(image, CPU),
        segments,
        size=tiny_clip.image_size,
        mean=tiny_clip.mean,
        std=tiny_clip.std,
        expand_ratio=0.1,
    )
    with torch.no_grad():
        own = tiny_clip.encode_image(crops.crops)
    noise = torch.randn(len(NAMES), own.shape[1], generator=torch.Generator().manual_seed(1))
    text = torch.nn.functional.normalize(noise, dim=-1)
    text[classes] = own
    assert np.array_equal(seg.classify_gt_segments(image, gt, NAMES, text_emb=text), gt)
    # With shuffled text rows the answer follows the rows.
    perm = torch.tensor([2, 3, 0, 1])
    shuffled = seg.classify_gt_segments(image, gt, NAMES, text_emb=text[perm])
    inverse = torch.argsort(perm).numpy()
    assert np.array_equal(shuffled, np.where(gt >= 0, inverse[np.maximum(gt, 0)], -1))


def test_segment_oracle_labels_come_from_the_ground_truth(proposer, tiny_clip, image):
    seg = TwoStageSegmenter(proposer, tiny_clip, mask_threshold=0.5)
    gt = label_map()
    labels = seg.segment_oracle(image, gt, NAMES)
    assert labels.shape == gt.shape and labels.dtype == np.int32
    assert set(np.unique(labels)) <= {-1, 0, 1, 2}
    props = seg.propose(image_to_tensor(image, CPU)[None], seg.text_embeddings(NAMES))
    scores = oracle_semantic_map(props.masks[0], gt, len(NAMES), mask_probs=props.mask_probs[0])
    assert np.array_equal(labels, scores_to_labels(scores).numpy())
    # A ground truth of a single class: every covered pixel takes it.
    single = np.full_like(gt, 3)
    assert set(np.unique(seg.segment_oracle(image, single, NAMES))) <= {-1, 3}
    with pytest.raises(ValueError, match="does not match the image"):
        seg.segment_oracle(image, gt[:10], NAMES)


def test_bad_inputs_are_refused(proposer, tiny_clip, image):
    with pytest.raises(ValueError, match="mask_threshold"):
        TwoStageSegmenter(proposer, tiny_clip, mask_threshold=1.5)
    seg = TwoStageSegmenter(proposer, tiny_clip)
    with pytest.raises(ValueError, match="text_emb must be"):
        seg.segment(image, NAMES, text_emb=torch.zeros(2, tiny_clip.embed_dim))
    with pytest.raises(ValueError, match="H×W×3"):
        image_to_tensor(np.zeros((4, 4)), CPU)
    with pytest.raises(ValueError, match="uint8 or float"):
        image_to_tensor(torch.zeros(3, 4, 4, dtype=torch.int64), CPU)


def test_batched_diagnostics_equal_single_images(proposer, tiny_clip, image):
    seg = TwoStageSegmenter(proposer, tiny_clip, mask_threshold=0.5)
    gt = label_map()
    other, other_gt = np.ascontiguousarray(image[:32, :48]), np.ascontiguousarray(gt[:32, :48])
    images, gts = [image, other, image], [gt, other_gt, np.full_like(gt, -1)]
    oracle = seg.segment_oracle_batch(images, gts, NAMES)
    segments = seg.classify_gt_segments_batch(images, gts, NAMES)
    for i, (img, g) in enumerate(zip(images, gts)):
        assert np.array_equal(oracle[i], seg.segment_oracle(img, g, NAMES))
        assert np.array_equal(segments[i], seg.classify_gt_segments(img, g, NAMES))
    assert (segments[2] == -1).all() and (oracle[2] == -1).all()  # nothing scored, nothing labelled
    assert seg.segment_oracle_batch([], [], NAMES) == [] and seg.classify_gt_segments_batch([], [], NAMES) == []
    with pytest.raises(ValueError, match="2 images but 1 ground-truth maps"):
        seg.segment_oracle_batch([image, image], [gt], NAMES)


def test_a_clip_only_segmenter_classifies_ground_truth_segments(proposer, tiny_clip, image):
    clip_only = TwoStageSegmenter(None, tiny_clip)
    assert clip_only.device == tiny_clip.device
    gt = label_map()
    assert np.array_equal(
        clip_only.classify_gt_segments(image, gt, NAMES),
        TwoStageSegmenter(proposer, tiny_clip).classify_gt_segments(image, gt, NAMES),
    )
    with pytest.raises(ValueError, match="has no proposer"):
        clip_only.segment(image, NAMES)


def test_proposer_and_clip_must_share_the_text_size(tiny_clip):
    narrow = build_proposer(load_proposer_config("proposer-tiny")).eval()  # text_dim 16
    with pytest.raises(ValueError, match=r"expects text embeddings of size 16, the CLIP gives 128"):
        TwoStageSegmenter(narrow, tiny_clip)


def box_masks(height: int = 40, width: int = 56) -> torch.Tensor:
    """Three masks from another generator: two overlapping boxes and a strip, ``[3, H, W]`` bool."""
    masks = torch.zeros(3, height, width, dtype=torch.bool)
    masks[0, 2:20, 4:30] = True
    masks[1, 10:38, 20:50] = True
    masks[2, :, 52:] = True
    return masks


@pytest.mark.parametrize("segmenter_class", [TwoStageSegmenter, OnePassSegmenter])
def test_segment_with_masks_is_clip_times_score_without_a_proposer(tiny_clip, image, segmenter_class):
    seg = segmenter_class(None, tiny_clip)
    masks, scores = box_masks(), torch.tensor([0.9, 0.5, 1.0])
    labels = seg.segment_with_masks(image, masks, scores, NAMES)
    assert labels.shape == (40, 56) and labels.dtype == np.int32
    text = seg.text_embeddings(NAMES)
    p_clip = seg.clip_probs([image_to_tensor(image, CPU)], [masks], text)[0]
    expected = predict_labels(p_clip * scores[:, None], masks.float()).numpy()
    assert np.array_equal(labels, expected)
    assert (labels[~masks.any(0).numpy()] == -1).all() and (labels[masks.any(0).numpy()] >= 0).all()
    # A mask scored 0 gives no evidence: only the pixels the others cover get labels.
    zeroed = seg.segment_with_masks(image, masks, torch.tensor([0.9, 0.5, 0.0]), NAMES, text_emb=text)
    assert (zeroed[:, 52:] == -1).all()


def test_segment_with_ground_truth_masks_is_classify_gt_segments(tiny_clip, image):
    """Disjoint masks scored 1: each is painted with CLIP's top class, as the ground-truth diagnostic does."""
    seg = TwoStageSegmenter(None, tiny_clip)
    gt = label_map()
    _, segments = gt_segments(gt)
    labels = seg.segment_with_masks(image, segments, torch.ones(len(segments)), NAMES)
    assert np.array_equal(labels, seg.classify_gt_segments(image, gt, NAMES))


def test_segment_with_masks_batch_equals_single_images_and_takes_no_masks(tiny_clip, image):
    seg = TwoStageSegmenter(None, tiny_clip)
    small = np.ascontiguousarray(image[:32, :48])
    none = torch.zeros(0, 40, 56, dtype=torch.bool)
    images = [image, small, image]
    masks = [box_masks(), box_masks(32, 48), none]
    scores = [torch.ones(3), torch.tensor([0.2, 0.7, 1.0]), torch.ones(0)]
    batch = seg.segment_with_masks_batch(images, masks, scores, NAMES)
    for i in range(3):
        assert np.array_equal(batch[i], seg.segment_with_masks(images[i], masks[i], scores[i], NAMES))
    assert (batch[2] == -1).all()  # no mask, no label
    assert seg.segment_with_masks_batch([], [], [], NAMES) == []


def test_segment_with_masks_refuses_masks_that_do_not_fit(tiny_clip, image):
    seg = TwoStageSegmenter(None, tiny_clip)
    with pytest.raises(ValueError, match=r"masks must be bool \[Q, 40, 56\]"):
        seg.segment_with_masks(image, box_masks(32, 48), torch.ones(3), NAMES)
    with pytest.raises(ValueError, match="masks must be bool"):
        seg.segment_with_masks(image, box_masks().float(), torch.ones(3), NAMES)
    with pytest.raises(ValueError, match=r"scores must be \[Q=3\]"):
        seg.segment_with_masks(image, box_masks(), torch.ones(2), NAMES)
    with pytest.raises(ValueError, match="2 images, 1 mask sets and 2 score sets"):
        seg.segment_with_masks_batch([image, image], [box_masks()], [torch.ones(3)] * 2, NAMES)


@pytest.mark.parametrize("segmenter_class", [TwoStageSegmenter, OnePassSegmenter])
def test_max_proposals_keeps_the_best_scored_and_none_changes_nothing(proposer, tiny_clip, image, segmenter_class):
    images = torch.stack([image_to_tensor(image, CPU), image_to_tensor(np.ascontiguousarray(image[::-1]), CPU)])
    default = segmenter_class(proposer, tiny_clip)
    text = default.text_embeddings(NAMES)
    uncapped = default.propose(images, text)
    assert default.max_proposals is None
    assert np.array_equal(
        segmenter_class(proposer, tiny_clip, max_proposals=None).segment(image, NAMES), default.segment(image, NAMES)
    )
    capped = segmenter_class(proposer, tiny_clip, max_proposals=5).propose(images, text)
    assert capped.masks.shape[:2] == (2, 5) and capped.mask_probs.shape[:2] == (2, 5)
    for i in range(2):
        best = torch.sort(uncapped.scores[i], descending=True, stable=True).values[:5]
        assert torch.equal(torch.sort(capped.scores[i], descending=True).values, best)
    assert segmenter_class(proposer, tiny_clip, max_proposals=3).segment(image, NAMES).shape == image.shape[:2]
    with pytest.raises(ValueError, match="max_proposals must be null or an integer >= 1"):
        segmenter_class(proposer, tiny_clip, max_proposals=0)


@pytest.mark.parametrize("segmenter_class", [TwoStageSegmenter, OnePassSegmenter])
def test_bf16_autocast_runs_and_gives_float32_scores(proposer, tiny_clip, image, segmenter_class):
    from model.precision import inference_autocast

    seg = segmenter_class(proposer, tiny_clip)
    tensor = image_to_tensor(image, CPU)
    with inference_autocast("bf16", CPU):
        text = seg.text_embeddings(["a", "b", "c"])
        proposals = seg.propose(tensor[None], text)
        probs = seg.clip_probs([tensor], [proposals.masks[0]], text)[0]
        labels = seg.segment(image, ["a", "b", "c"], text_emb=text)
    assert text.dtype == torch.float32 and proposals.mask_probs.dtype == torch.float32
    assert probs.dtype == torch.float32 and torch.allclose(probs.sum(-1), torch.ones(probs.shape[0]))
    assert labels.dtype == np.int32 and labels.shape == image.shape[:2]


def test_learned_text_prompts_change_only_clips_side(proposer, image):
    from model.clip import build_clip
    from model.text import TextClassifier
    from model.text_prompts import TextPrompts

    plain = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    prompted = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    prompted.text_prompts = TextPrompts.for_clip(prompted.model, 4, generator=torch.Generator().manual_seed(0))
    seg = TwoStageSegmenter(proposer, prompted)
    learned = seg.text_embeddings(NAMES)
    templates = TextClassifier(plain)(NAMES)
    assert not torch.allclose(learned, templates, atol=1e-3)
    assert torch.equal(seg._proposer_embeddings(NAMES, learned), templates)
    # The proposals (and their class probabilities) are the template segmenter's.
    images = [image_to_tensor(image, CPU)]
    ours = seg._propose_grouped(images, seg._proposer_embeddings(NAMES, learned))[0]
    theirs = TwoStageSegmenter(proposer, plain)._propose_grouped(images, templates)[0]
    assert torch.equal(ours.class_probs, theirs.class_probs) and torch.equal(ours.masks, theirs.masks)
