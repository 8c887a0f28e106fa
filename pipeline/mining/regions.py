"""The usable regions of one image: binarised proposals filtered by score and area, deduplicated.

A trained MaskFormer-style proposer returns many near-copies of its best
masks. Keeping them all costs one CLIP crop each and makes the margin over the
"runner-up region" meaningless (the runner-up of a noun's best region would be
its copy), so usable masks are deduplicated by greedy mask NMS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.masks import mask_iou
from model.precision import full_precision
from pipeline.mining.config import MiningConfig


@dataclass(frozen=True)
class Regions:
    """The usable regions of one image, in increasing proposal id.

    proposal_ids: int64 ``[R]`` query indices of the proposer
    masks:        bool ``[R, H, W]``
    scores:       float32 ``[R]`` objectness (1 − p(no object))
    areas:        int64 ``[R]`` pixels per mask
    """

    proposal_ids: torch.Tensor
    masks: torch.Tensor
    scores: torch.Tensor
    areas: torch.Tensor

    def __len__(self) -> int:
        return int(self.proposal_ids.shape[0])


@full_precision
def mask_nms(masks: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (increasing) of the masks kept by greedy NMS.

    Masks are visited by decreasing score (ties: lower index first); a mask is
    dropped when its IoU with an already kept mask is at least ``iou_threshold``. The IoUs are
    float32 with autocast off, so pixel counts stay exact under a bf16 run.
    """
    if masks.shape[0] != scores.shape[0]:
        raise ValueError(f"{masks.shape[0]} masks but {scores.shape[0]} scores")
    count = masks.shape[0]
    if count == 0:
        return torch.zeros(0, dtype=torch.long, device=masks.device)
    iou = mask_iou(masks).cpu()
    # A stable sort on the negated scores keeps equal scores in index order.
    order = torch.sort(-scores.float().cpu(), stable=True).indices.tolist()
    kept: list[int] = []
    for index in order:
        if all(float(iou[index, other]) < iou_threshold for other in kept):
            kept.append(index)
    return torch.tensor(sorted(kept), dtype=torch.long, device=masks.device)


def usable_regions(mask_probs: torch.Tensor, scores: torch.Tensor, settings: MiningConfig) -> Regions:
    """The regions of one image's proposals ``mask_probs [Q, H, W]`` with objectness ``scores [Q]``.

    Thresholds at ``settings.mask_threshold``, keeps proposals with score ≥
    ``min_proposal_score`` and area ≥ :meth:`MiningConfig.min_area`, then
    applies :func:`mask_nms` when ``settings.nms_iou`` is set and keeps the
    ``settings.max_proposals`` best-scored (ties: the lower proposal id).
    """
    if mask_probs.dim() != 3 or scores.shape != mask_probs.shape[:1]:
        raise ValueError(
            f"expected mask_probs [Q, H, W] and scores [Q], got {tuple(mask_probs.shape)} and {tuple(scores.shape)}"
        )
    height, width = mask_probs.shape[1:]
    masks = mask_probs > settings.mask_threshold
    areas = masks.flatten(1).sum(dim=1)
    keep = (scores >= settings.min_proposal_score) & (areas >= settings.min_area(height, width))
    ids = torch.nonzero(keep).flatten()
    if settings.nms_iou is not None and ids.numel() > 1:
        ids = ids[mask_nms(masks[ids], scores[ids], settings.nms_iou)]
    if settings.max_proposals is not None and ids.numel() > settings.max_proposals:
        best = torch.sort(-scores[ids].float(), stable=True).indices[: settings.max_proposals]
        ids = ids[best.sort().values]
    return Regions(proposal_ids=ids.long(), masks=masks[ids], scores=scores[ids].float(), areas=areas[ids].long())
