"""Masked crops: how CLIP sees one mask proposal.

For each mask of one image: crop the mask's bounding box (optionally enlarged),
paint the pixels outside the mask with CLIP's mean colour, resize bicubically to
CLIP's input size and normalise. Painting in normalised space (zero) is the same
as painting the mean colour before normalising, and keeps the background exactly
zero wherever the bicubic kernel sees only background.

The resize runs per mask with ``F.interpolate``: each crop has its own size, and a
batched ``grid_sample`` would need an ``N x 3 x H x W`` copy of the image. Measured on
the 2-core development CPU (20 masks, 128 px image, 64 px crops): per-mask
interpolate 4.4 ms, ``roi_align`` 7.5 ms (and bilinear, not bicubic), batched
``grid_sample`` 3.4 ms (1 thread) / 1.9 ms (2 threads) at O(N*H*W) memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class MaskedCrops:
    """The crops of one image's masks.

    crops:      float32 ``[N, 3, size, size]``, normalised (background = 0)
    crop_masks: bool ``[N, size, size]``, each mask resized (nearest) into its crop
    valid:      bool ``[N]``, False for empty masks (their crop and crop mask are all zero)
    boxes:      int64 ``[N, 4]`` crop boxes ``(x0, y0, x1, y1)`` in image pixels, end-exclusive;
                ``(0, 0, 0, 0)`` for empty masks
    """

    crops: torch.Tensor
    crop_masks: torch.Tensor
    valid: torch.Tensor
    boxes: torch.Tensor


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight end-exclusive boxes ``(x0, y0, x1, y1)`` of bool masks ``[N, H, W]``; zeros when empty."""
    height, width = masks.shape[1:]
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    ys = torch.arange(height, device=masks.device)
    xs = torch.arange(width, device=masks.device)
    y0 = torch.where(rows, ys, height).amin(dim=1)
    y1 = torch.where(rows, ys + 1, 0).amax(dim=1)
    x0 = torch.where(cols, xs, width).amin(dim=1)
    x1 = torch.where(cols, xs + 1, 0).amax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).long()
    return torch.where(rows.any(dim=1, keepdim=True), boxes, torch.zeros_like(boxes))


def expand_boxes(boxes: torch.Tensor, ratio: float, height: int, width: int) -> torch.Tensor:
    """Scale each box's sides by ``1 + ratio`` about its centre, round outwards, clamp to the image.

    Empty boxes (zero area) stay ``(0, 0, 0, 0)``.
    """
    if ratio < 0:
        raise ValueError(f"expand_ratio must be >= 0, got {ratio}")
    if ratio == 0 or boxes.numel() == 0:
        return boxes.clone()
    b = boxes.double()
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    half_w, half_h = (b[:, 2] - b[:, 0]) * (1 + ratio) / 2, (b[:, 3] - b[:, 1]) * (1 + ratio) / 2
    out = torch.stack(
        [
            torch.floor(cx - half_w).clamp(0, width),
            torch.floor(cy - half_h).clamp(0, height),
            torch.ceil(cx + half_w).clamp(0, width),
            torch.ceil(cy + half_h).clamp(0, height),
        ],
        dim=1,
    ).long()
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    return torch.where(empty[:, None], torch.zeros_like(out), out)


def masked_crops(
    image: torch.Tensor,
    masks: torch.Tensor,
    *,
    size: int,
    mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor,
    expand_ratio: float = 0.0,
) -> MaskedCrops:
    """CLIP inputs for the masks ``[N, H, W]`` (bool) of one image ``[3, H, W]``.

    ``image`` is float in 0..1 or uint8 in 0..255 (unnormalised); ``mean``/``std`` are
    CLIP's per-channel normalisation in 0..1 units. Each crop is the mask's box,
    enlarged by ``expand_ratio`` (see :func:`expand_boxes`), with pixels outside the
    mask set to the mean colour, resized bicubically to ``size x size`` and normalised.
    Empty masks give ``valid = False`` and all-zero outputs. Results are on the image's device.
    """
    if image.dim() != 3 or image.shape[0] != 3 or image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"image must be [3, H, W] with H, W > 0, got shape {tuple(image.shape)}")
    if masks.dim() != 3 or masks.shape[1:] != image.shape[1:]:
        raise ValueError(
            f"masks must be [N, H, W] matching the image {tuple(image.shape[1:])}, got {tuple(masks.shape)}"
        )
    if masks.dtype != torch.bool:
        raise TypeError(f"masks must be bool (threshold them first), got {masks.dtype}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    device = image.device
    pixels = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device).view(3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device).view(3, 1, 1)
    normalised = (pixels - mean_t) / std_t
    masks = masks.to(device)
    height, width = masks.shape[1:]

    n = masks.shape[0]
    valid = masks.flatten(1).any(dim=1)
    boxes = expand_boxes(mask_boxes(masks), expand_ratio, height, width)
    crops = torch.zeros(n, 3, size, size, dtype=torch.float32, device=device)
    crop_masks = torch.zeros(n, size, size, dtype=torch.bool, device=device)
    for index, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        if x1 <= x0 or y1 <= y0:
            continue
        region = masks[index, y0:y1, x0:x1]
        painted = torch.where(region, normalised[:, y0:y1, x0:x1], 0.0)
        crops[index] = F.interpolate(painted[None], size=(size, size), mode="bicubic", align_corners=False)[0]
        resized = F.interpolate(region[None, None].float(), size=(size, size), mode="nearest")
        crop_masks[index] = resized[0, 0] > 0.5
    return MaskedCrops(crops=crops, crop_masks=crop_masks, valid=valid, boxes=boxes)
