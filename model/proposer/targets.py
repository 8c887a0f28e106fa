"""Training targets: one mask per class present (MaskFormer's semantic-segmentation training)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class SemanticTargets(NamedTuple):
    """``classes [T]`` (sorted, int64), ``masks [T,H,W]`` bool, ``valid [H,W]`` bool (not ignore)."""

    classes: torch.Tensor
    masks: torch.Tensor
    valid: torch.Tensor

    def to(self, device: torch.device | str) -> SemanticTargets:
        return SemanticTargets(self.classes.to(device), self.masks.to(device), self.valid.to(device))


def semantic_targets(label: torch.Tensor, ignore: int = -1) -> SemanticTargets:
    """Split a label map ``[H,W]`` of class indices into one binary mask per class present.

    Pixels equal to ``ignore`` belong to no mask and are marked invalid; any
    other negative value is an error. Classes come out in ascending order.
    """
    if label.ndim != 2:
        raise ValueError(f"label must be [H, W], got {list(label.shape)}")
    if label.dtype.is_floating_point or label.dtype == torch.bool:
        raise ValueError(f"label must hold integer class indices, got {label.dtype}")
    label = label.long()
    valid = label != ignore
    bad = (label < 0) & valid
    if bad.any():
        raise ValueError(
            f"label holds negative values other than ignore={ignore}: {sorted(label[bad].unique().tolist())}"
        )
    classes = torch.unique(label[valid])  # sorted
    masks = label[None] == classes[:, None, None]
    return SemanticTargets(classes, masks, valid)


class GridTargets(NamedTuple):
    """Targets on the prediction grid: ``classes [T]``, ``soft [T,h,w]`` in 0..1, ``weight [h,w]``."""

    classes: torch.Tensor
    soft: torch.Tensor
    weight: torch.Tensor


def grid_targets(targets: SemanticTargets, size: tuple[int, int]) -> GridTargets:
    """Area-average full-resolution targets onto a prediction grid of ``size`` ``(h, w)``.

    The grid's stride ``s`` is ``H / h`` (integer; ``h = ceil(H/s)`` when the
    model padded its input). ``weight`` is the fraction of a cell's pixels that
    are valid (0 where all are ignore or padding) and ``soft`` the fraction of
    those valid pixels inside the mask, so a weighted per-cell loss equals the
    per-pixel loss when the prediction is constant over each cell.
    """
    height, width = targets.valid.shape
    stride = _grid_stride((height, width), size)
    masks = (targets.masks & targets.valid).float()
    valid = targets.valid.float()
    if stride == 1:
        return GridTargets(targets.classes, masks, valid)
    pad = (0, (-width) % stride, 0, (-height) % stride)
    weight = F.avg_pool2d(F.pad(valid, pad)[None, None], stride)[0, 0]
    inside = F.avg_pool2d(F.pad(masks, pad)[:, None], stride)[:, 0]
    return GridTargets(targets.classes, inside / weight.clamp(min=1e-12), weight)


def _grid_stride(full: tuple[int, int], grid: tuple[int, int]) -> int:
    height, width = full
    h, w = grid
    stride = max(1, round(height / h))
    if -(-height // stride) != h or -(-width // stride) != w:
        raise ValueError(f"targets of size {height}x{width} do not fit a prediction grid of {h}x{w}")
    return stride
