import pytest
import torch

from model.proposer import Proposals, propose, top_proposals
from model.proposer.inference import upsample_mask_logits


def test_proposals_shapes_and_probabilities(tiny_model, text16):
    images = torch.rand(2, 3, 50, 60)
    proposals = propose(tiny_model, images, text16, mask_threshold=0.4)
    assert proposals.mask_probs.shape == (2, 6, 50, 60)
    assert proposals.class_probs.shape == (2, 6, 5) and proposals.scores.shape == (2, 6)
    torch.testing.assert_close(proposals.class_probs.sum(-1), proposals.scores)
    assert ((proposals.mask_probs >= 0) & (proposals.mask_probs <= 1)).all()
    assert torch.equal(proposals.masks, proposals.mask_probs > 0.4)
    assert propose(tiny_model, images, text16).masks is None
    logits = tiny_model(images, text16)["pred_logits"]
    torch.testing.assert_close(proposals.scores, 1 - logits.softmax(-1)[..., -1])


def test_upsampling_keeps_cells_on_their_pixels():
    logits = torch.full((1, 1, 3, 3), -10.0)
    logits[0, 0, 1, 1] = 10.0  # the cell covering pixels 4..7 of a 12-pixel (padded) side
    up = upsample_mask_logits(logits, (10, 10)).sigmoid() > 0.5
    assert up.shape == (1, 1, 10, 10)
    rows = up[0, 0].any(1).nonzero().flatten().tolist()
    assert rows == [4, 5, 6, 7]


def test_propose_needs_text_or_stored_vocabulary(tiny_model):
    with pytest.raises(ValueError, match="stores no vocabulary"):
        propose(tiny_model, torch.rand(1, 3, 32, 32))


def test_propose_under_autocast_returns_float32(tiny_model, text16):
    # CPU bfloat16 autocast stands in for CUDA float16 autocast here
    images = torch.rand(1, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        proposals = propose(tiny_model, images, text16, mask_threshold=0.5)
    assert proposals.mask_probs.dtype == torch.float32 and proposals.scores.dtype == torch.float32
    reference = propose(tiny_model, images, text16)
    torch.testing.assert_close(proposals.scores, reference.scores, atol=0.05, rtol=0)


def _proposals(scores: list[list[float]]) -> Proposals:
    scores_t = torch.tensor(scores)
    batch, queries = scores_t.shape
    mask_probs = torch.arange(batch * queries * 6, dtype=torch.float32).reshape(batch, queries, 2, 3) / 100
    class_probs = torch.arange(batch * queries * 4, dtype=torch.float32).reshape(batch, queries, 4)
    return Proposals(mask_probs=mask_probs, class_probs=class_probs, scores=scores_t, masks=mask_probs > 0.2)


def test_top_proposals_keeps_the_best_scored_in_query_order():
    proposals = _proposals([[0.1, 0.9, 0.5, 0.9, 0.7], [0.8, 0.2, 0.3, 0.1, 0.6]])
    top = top_proposals(proposals, 3)
    # Image 0: 0.9 (q1), 0.9 (q3), 0.7 (q4); image 1: 0.8 (q0), 0.6 (q4), 0.3 (q2).
    kept = [[1, 3, 4], [0, 2, 4]]
    for image, queries in enumerate(kept):
        for field in ("mask_probs", "class_probs", "scores", "masks"):
            assert torch.equal(getattr(top, field)[image], getattr(proposals, field)[image, queries]), field
    # The kept ones are the top-k by score: no dropped proposal scores above a kept one.
    for image in range(2):
        dropped = [q for q in range(5) if q not in kept[image]]
        assert proposals.scores[image, dropped].max() <= top.scores[image].min()
    # Ties go to the lower query index.
    assert top_proposals(_proposals([[0.5, 0.5, 0.5]]), 2).scores.shape == (1, 2)
    assert torch.equal(
        top_proposals(_proposals([[0.5, 0.5, 0.5]]), 2).class_probs, _proposals([[0.5, 0.5, 0.5]]).class_probs[:, :2]
    )


def test_no_cap_changes_nothing_and_bad_caps_are_refused():
    proposals = _proposals([[0.1, 0.9, 0.5]])
    assert top_proposals(proposals, None) is proposals
    assert top_proposals(proposals, 3) is proposals and top_proposals(proposals, 10) is proposals
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="max_proposals must be null or an integer >= 1"):
            top_proposals(proposals, bad)
