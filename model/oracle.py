"""Diagnostic oracles of the paper's analysis (pure torch, no models).

* Oracle *classification* of proposals: each proposal takes the ground-truth
  class it overlaps most, which measures how good the proposals are when the
  classifier is perfect.
* Ground-truth *segments*: one mask per class present in an image, to be
  classified by CLIP, which measures how good the classifier is when the masks
  are perfect (see ``TwoStageSegmenter.classify_gt_segments``).

Label maps are 0-based class indices with ``ignore_index`` (default -1) for
unscored pixels; NumPy arrays are accepted wherever a label map is expected.
"""

from __future__ import annotations

import numpy as np
import torch

from model.scoring import semantic_map


def as_label_tensor(labels: np.ndarray | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """An integer label map as an int64 tensor (on ``device`` when given)."""
    t = labels if isinstance(labels, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(labels))
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"a label map must hold integers, got dtype {t.dtype}")
    return t.to(device=device if device is not None else t.device, dtype=torch.int64)


def gt_segments(gt: np.ndarray | torch.Tensor, ignore_index: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """One mask per class present in ``gt`` ``[H, W]``: ``(classes [K], masks [K, H, W] bool)``.

    Classes are sorted ascending; ignored pixels belong to no segment.
    """
    gt = as_label_tensor(gt)
    if gt.ndim != 2:
        raise ValueError(f"gt must be a [H, W] label map, got shape {tuple(gt.shape)}")
    classes = torch.unique(gt[gt != ignore_index])  # sorted
    return classes, gt[None] == classes[:, None, None]


def paint_segments(masks: torch.Tensor, labels: torch.Tensor, fill: int = -1) -> torch.Tensor:
    """Label map ``[H, W]`` int64 from masks ``[K, H, W]`` and their labels ``[K]``.

    Pixels in no mask get ``fill``; where masks overlap the later one wins.
    """
    if masks.ndim != 3 or labels.shape != masks.shape[:1]:
        raise ValueError(f"masks [K, H, W] and labels [K] disagree: {tuple(masks.shape)} vs {tuple(labels.shape)}")
    out = torch.full(masks.shape[-2:], int(fill), dtype=torch.int64, device=masks.device)
    for mask, label in zip(masks.bool(), labels.to(masks.device).long()):
        out[mask] = label
    return out


def oracle_proposal_labels(
    binary_masks: torch.Tensor, gt: np.ndarray | torch.Tensor, ignore_index: int = -1
) -> torch.Tensor:
    """Each proposal's ground-truth class by pixel overlap, ``[Q]`` int64.

    ``binary_masks`` ``[Q, H, W]`` (bool, or anything > 0.5 counts as inside)
    must have the size of ``gt`` ``[H, W]``. A proposal takes the class with the
    most pixels inside it (ignored pixels do not count; ties go to the smaller
    class index) and -1 when it covers no scored pixel.
    """
    if binary_masks.ndim != 3:
        raise ValueError(f"binary_masks must be [Q, H, W], got {tuple(binary_masks.shape)}")
    gt = as_label_tensor(gt, binary_masks.device)
    if gt.shape != binary_masks.shape[-2:]:
        raise ValueError(f"masks of size {tuple(binary_masks.shape[-2:])} do not match gt of size {tuple(gt.shape)}")
    q = binary_masks.shape[0]
    classes, segments = gt_segments(gt, ignore_index)
    if q == 0 or classes.numel() == 0:
        return torch.full((q,), -1, dtype=torch.int64, device=binary_masks.device)
    inside = (binary_masks > 0.5) if binary_masks.dtype != torch.bool else binary_masks
    # Overlap counts as one matrix product over the classes present (K is small);
    # float64 keeps counts exact for any image size.
    overlap = inside.flatten(1).double() @ segments.flatten(1).double().T  # [Q, K]
    best, idx = overlap.max(dim=1)
    return torch.where(best > 0, classes[idx], torch.full_like(idx, -1))


def one_hot_class_probs(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[Q]`` labels → ``[Q, C]`` float one-hot rows; a -1 label gives an all-zero row."""
    labels = labels.long()
    if labels.numel() and (labels.min() < -1 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in -1..{num_classes - 1}")
    probs = torch.zeros(labels.shape[0], num_classes, dtype=torch.float32, device=labels.device)
    has = labels >= 0
    probs[has, labels[has]] = 1.0
    return probs


def oracle_semantic_map(
    binary_masks: torch.Tensor,
    gt: np.ndarray | torch.Tensor,
    num_classes: int,
    ignore_index: int = -1,
    mask_probs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Semantic map ``[C, H, W]`` with every proposal one-hot on its oracle class.

    Classes come from ``binary_masks`` (see :func:`oracle_proposal_labels`); the
    map weights each proposal by ``mask_probs`` (the soft masks, as in the real
    segmenter) when given, else by the binary masks. Proposals without a label
    add nothing, so pixels no labelled proposal covers score 0 everywhere
    (``scores_to_labels`` turns them into -1).
    """
    labels = oracle_proposal_labels(binary_masks, gt, ignore_index)
    weights = binary_masks.float() if mask_probs is None else mask_probs
    if weights.shape != binary_masks.shape:
        raise ValueError(f"mask_probs {tuple(weights.shape)} must match binary_masks {tuple(binary_masks.shape)}")
    return semantic_map(one_hot_class_probs(labels, num_classes), weights)
