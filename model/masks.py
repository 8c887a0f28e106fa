"""Mask geometry shared by training, mining and evaluation."""

from __future__ import annotations

import torch


def mask_iou(a: torch.Tensor, b: torch.Tensor | None = None, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """IoU ``[A, B]`` of bool masks ``a [A, H, W]`` and ``b [B, H, W]`` (``b`` defaults to ``a``); 0 where both
    are empty.

    Intersections are products of 0/1 matrices in ``dtype``: exact in float32 (TF32 too) below
    2^24 pixels a mask; pass ``torch.float64`` where pixel counts must stay exact beyond that.
    Call it outside autocast (or under :func:`model.precision.full_precision`), as bf16 is not exact.
    """
    fa = a.flatten(1).to(dtype)
    fb = fa if b is None else b.flatten(1).to(dtype)
    inter = fa @ fb.T
    union = fa.sum(1, keepdim=True) + fb.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
