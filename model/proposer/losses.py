"""Mask losses, both for matched pairs and as all-pairs costs for the Hungarian matcher.

Targets may be soft (fractions of a cell inside a mask, see ``targets.grid_targets``)
and every cell carries a weight (its valid fraction; 0 = ignore). The per-cell
loss against a soft target ``t`` is ``t·L(x, 1) + (1 − t)·L(x, 0)``: for BCE this
is exactly BCE with a soft target; for the sigmoid focal loss it is the natural
extension that keeps the matcher's cost and the training loss the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-12


def pixel_losses(
    logits: torch.Tensor, kind: str, alpha: float = 0.25, gamma: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-element loss against target 1 and against target 0.

    ``bce``: ``softplus(−x)`` and ``softplus(x)``. ``focal`` (Lin et al., as in
    MaskFormer): ``α (1−p)^γ · bce₁`` and ``(1−α) p^γ · bce₀`` with ``p = sigmoid(x)``.
    """
    pos, neg = F.softplus(-logits), F.softplus(logits)
    if kind == "bce":
        return pos, neg
    if kind == "focal":
        prob = logits.sigmoid()
        return alpha * (1 - prob) ** gamma * pos, (1 - alpha) * prob**gamma * neg
    raise ValueError(f"unknown mask loss '{kind}' (expected bce or focal)")


def mask_loss(
    logits: torch.Tensor, soft: torch.Tensor, weight: torch.Tensor, kind: str, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Weighted mean per-pixel loss of each mask: ``[M,N]`` logits/targets/weights → ``[M]``."""
    pos, neg = pixel_losses(logits, kind, alpha, gamma)
    per_pixel = soft * pos + (1 - soft) * neg
    return (per_pixel * weight).sum(-1) / weight.sum(-1).clamp(min=EPS)


def dice_loss(logits: torch.Tensor, soft: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``1 − (2Σwpt + 1) / (Σwp + Σwt + 1)`` per mask (``p = sigmoid``): ``[M,N]`` → ``[M]``."""
    prob = logits.sigmoid() * weight
    numerator = 2 * (prob * soft).sum(-1)
    denominator = prob.sum(-1) + (soft * weight).sum(-1)
    return 1 - (numerator + 1) / (denominator + 1)


def pairwise_mask_loss(
    logits: torch.Tensor, soft: torch.Tensor, weight: torch.Tensor, kind: str, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """:func:`mask_loss` for every (prediction, target) pair: ``[Q,N]``, ``[T,N]``, ``[N]`` → ``[Q,T]``."""
    pos, neg = pixel_losses(logits, kind, alpha, gamma)
    total = (pos * weight) @ soft.T + (neg * weight) @ (1 - soft).T
    return total / weight.sum().clamp(min=EPS)


def pairwise_dice_loss(logits: torch.Tensor, soft: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """:func:`dice_loss` for every (prediction, target) pair: ``[Q,N]``, ``[T,N]``, ``[N]`` → ``[Q,T]``."""
    prob = logits.sigmoid() * weight
    numerator = 2 * prob @ soft.T
    denominator = prob.sum(-1)[:, None] + (soft * weight).sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)
