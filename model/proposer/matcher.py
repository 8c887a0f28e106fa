"""Hungarian matching of predicted masks to target masks (MaskFormer's matcher)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .config import LossConfig
from .losses import pairwise_dice_loss, pairwise_mask_loss
from .targets import GridTargets


def hungarian_match(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost one-to-one assignment for a ``[Q,T]`` cost matrix.

    Returns ``(query_idx, target_idx)`` int64 tensors of length ``min(Q, T)``,
    sorted by query index. Non-finite costs are an error.
    """
    if cost.ndim != 2:
        raise ValueError(f"cost must be [Q, T], got {list(cost.shape)}")
    matrix = cost.detach().to("cpu", torch.float64).numpy()
    if not np.isfinite(matrix).all():
        raise ValueError("matching cost contains NaN or infinity (diverged predictions?)")
    rows, cols = linear_sum_assignment(matrix)
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)


class HungarianMatcher:
    """Cost = ``cost_class``·(−p(class)) + ``cost_mask``·mask loss + ``cost_dice``·dice loss.

    ``p(class)`` is the softmax over the C+1 logits; the mask terms are the
    training losses (``loss.mask_loss``: bce or focal) on the prediction grid,
    ignore cells excluded. Matching runs without gradients.
    """

    def __init__(self, loss: LossConfig):
        self.cost_class = loss.cost_class
        self.cost_mask = loss.cost_mask
        self.cost_dice = loss.cost_dice
        self.kind, self.alpha, self.gamma = loss.mask_loss, loss.focal_alpha, loss.focal_gamma

    def cost_matrix(self, logits: torch.Tensor, masks: torch.Tensor, target: GridTargets) -> torch.Tensor:
        """One image: ``logits [Q,C+1]``, ``masks [Q,h,w]`` → cost ``[Q,T]``."""
        prob = logits.float().softmax(-1)
        cost = -prob[:, target.classes]
        if len(target.classes):
            flat = masks.float().flatten(1)
            soft, weight = target.soft.flatten(1), target.weight.flatten()
            cost = self.cost_class * cost
            cost = cost + self.cost_mask * pairwise_mask_loss(flat, soft, weight, self.kind, self.alpha, self.gamma)
            cost = cost + self.cost_dice * pairwise_dice_loss(flat, soft, weight)
        return cost

    @torch.no_grad()
    def __call__(
        self, pred_logits: torch.Tensor, pred_masks: torch.Tensor, targets: Sequence[GridTargets]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per image ``(query_idx, target_idx)``, as :func:`hungarian_match`."""
        if len(targets) != len(pred_logits):
            raise ValueError(f"{len(targets)} targets for a batch of {len(pred_logits)} images")
        return [hungarian_match(self.cost_matrix(lg, m, t)) for lg, m, t in zip(pred_logits, pred_masks, targets)]
