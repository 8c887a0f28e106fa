"""model.contrastive: symmetric CLIP loss, with same-group pairs removed from the negatives."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from open_clip import ClipLoss

from model.contrastive import contrastive_loss


def test_without_groups_it_is_open_clips_loss():
    generator = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(6, 16, generator=generator), dim=-1)
    text = F.normalize(torch.randn(6, 16, generator=generator), dim=-1)
    scale = torch.tensor(1 / 0.07)
    assert torch.allclose(contrastive_loss(image, text, scale), ClipLoss()(image, text, scale), atol=1e-6)


def test_same_group_pairs_are_not_negatives():
    # One-hot embeddings: logits are the identity matrix (scale 1).
    embeddings = torch.eye(3)
    groups = torch.tensor([7, 7, 2])
    e = math.e
    grouped_row = math.log(1 + 1 / e)  # rows/columns 0 and 1: the other member of group 7 is masked
    free_row = math.log((e + 2) / e)  # row/column 2: both others are negatives
    expected = (2 * grouped_row + free_row) / 3
    loss = contrastive_loss(embeddings, embeddings, 1.0, group_ids=groups)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert contrastive_loss(embeddings, embeddings, 1.0).item() == pytest.approx(free_row, rel=1e-6)


def test_identical_texts_of_one_group_can_reach_zero_loss():
    """Two crops of the same noun share one text; unmasked, those rows are stuck at log 2."""
    text = torch.stack([torch.eye(3)[0], torch.eye(3)[0], torch.eye(3)[2]])
    image = torch.stack([torch.eye(3)[0], torch.eye(3)[0], torch.eye(3)[2]])
    masked = contrastive_loss(image, text, 100.0, group_ids=torch.tensor([0, 0, 1]))
    unmasked = contrastive_loss(image, text, 100.0)
    assert masked.item() < 1e-6
    assert unmasked.item() > math.log(2) * 2 / 3 - 1e-6


def _manual_loss(image, text, scale, groups):
    """Cross-entropy written out: the softmax of row i runs over j == i and j outside i's group."""
    logits = scale * image @ text.t()
    total = 0.0
    for matrix in (logits, logits.t()):
        for i in range(len(groups)):
            kept = [j for j in range(len(groups)) if j == i or groups[j] != groups[i]]
            total += -(matrix[i, i] - torch.logsumexp(matrix[i, kept], dim=0))
    return total / (2 * len(groups))


def test_matches_a_written_out_loss_and_gradients_flow():
    generator = torch.Generator().manual_seed(1)
    image = F.normalize(torch.randn(5, 8, generator=generator), dim=-1).requires_grad_()
    text = F.normalize(torch.randn(5, 8, generator=generator), dim=-1)
    groups = [0, 1, 0, 2, 1]
    scale = torch.tensor(10.0, requires_grad=True)
    loss = contrastive_loss(image, text, scale, group_ids=groups)
    assert torch.allclose(loss, _manual_loss(image, text, scale, groups), atol=1e-6)
    loss.backward()
    assert torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0
    assert scale.grad is not None and torch.isfinite(scale.grad)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        contrastive_loss(torch.zeros(3, 4), torch.zeros(2, 4), 1.0)
    with pytest.raises(ValueError, match="group_ids"):
        contrastive_loss(torch.eye(3), torch.eye(3), 1.0, group_ids=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="non-empty"):
        contrastive_loss(torch.zeros(0, 4), torch.zeros(0, 4), 1.0)
