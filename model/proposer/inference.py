"""Turning a proposer's raw outputs into mask proposals at the input resolution."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .network import MASK_STRIDE, MaskProposer


@dataclass(frozen=True)
class Proposals:
    """Per image and query: a soft mask, class probabilities and an objectness score.

    - ``mask_probs [B,Q,H,W]``: sigmoid of the mask logits, bilinearly upsampled
      to the input size;
    - ``class_probs [B,Q,C]``: softmax over the C classes and "no object", the
      latter dropped (rows sum to ``scores``);
    - ``scores [B,Q]``: ``1 − p(no object)``;
    - ``masks [B,Q,H,W]`` bool: ``mask_probs > mask_threshold``, or ``None``;
    - ``mask_logits [B,Q,h,w]``: the stride-4 logits ``mask_probs`` come from
      (:func:`soft_masks`), or ``None``. Stored as float32 they give back
      ``mask_probs`` exactly, at a sixteenth of its size.
    """

    mask_probs: torch.Tensor
    class_probs: torch.Tensor
    scores: torch.Tensor
    masks: torch.Tensor | None = None
    mask_logits: torch.Tensor | None = None

    def binary_masks(self) -> torch.Tensor:
        """``masks``, for proposals that have them (made with a ``mask_threshold``); else ``ValueError``."""
        if self.masks is None:
            raise ValueError("these proposals have no binary masks (they were made without a mask_threshold)")
        return self.masks

    def image(self, i: int) -> Proposals:
        """The proposals of image ``i`` alone (batch dimension 1)."""

        def one(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[i : i + 1]

        return Proposals(
            mask_probs=self.mask_probs[i : i + 1],
            class_probs=self.class_probs[i : i + 1],
            scores=self.scores[i : i + 1],
            masks=one(self.masks),
            mask_logits=one(self.mask_logits),
        )


def upsample_mask_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Stride-4 mask logits ``[B,Q,h,w]`` → ``[B,Q,H,W]`` on the input's pixel grid.

    The logits cover the padded input (``h = ceil(H/4)``), so they are upsampled
    by exactly 4 and cropped, keeping cells aligned with the pixels they cover.
    """
    height, width = size
    h, w = logits.shape[-2:]
    up = F.interpolate(logits, size=(h * MASK_STRIDE, w * MASK_STRIDE), mode="bilinear", align_corners=False)
    return up[..., :height, :width]


def soft_masks(mask_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The soft masks ``[B,Q,H,W]`` of stride-4 logits ``[B,Q,h,w]``: upsampled, then sigmoid."""
    return upsample_mask_logits(mask_logits.float(), size).sigmoid()


@torch.no_grad()
def propose(
    model: MaskProposer,
    images: torch.Tensor,
    text_embeddings: torch.Tensor | None = None,
    *,
    mask_threshold: float | None = None,
) -> Proposals:
    """Run ``model`` on a batch of images ``[B,3,H,W]`` (float 0..1 or uint8).

    Classes are the rows of ``text_embeddings [C,D]``, or the model's stored
    training vocabulary when ``None``. Runs in the model's current mode (call
    ``model.eval()``); works under ``torch.autocast`` (results are float32).
    """
    if text_embeddings is None:
        if model.vocabulary is None:
            raise ValueError("no text embeddings given and the proposer stores no vocabulary")
        text_embeddings = model.vocabulary.embeddings
    device = next(model.parameters()).device
    images = images.to(device)
    outputs = model(images, text_embeddings.to(device))
    probs = outputs["pred_logits"].float().softmax(-1)
    mask_logits = outputs["pred_masks"].float()
    height, width = images.shape[-2:]
    mask_probs = soft_masks(mask_logits, (height, width))
    masks = mask_probs > mask_threshold if mask_threshold is not None else None
    return Proposals(
        mask_probs=mask_probs,
        class_probs=probs[..., :-1],
        scores=1.0 - probs[..., -1],
        masks=masks,
        mask_logits=mask_logits,
    )


def check_max_proposals(max_proposals: object, where: str = "max_proposals") -> int | None:
    """``max_proposals`` when it is ``None`` or an integer >= 1, else ``ValueError`` naming ``where``."""
    if max_proposals is not None and (
        isinstance(max_proposals, bool) or not isinstance(max_proposals, int) or max_proposals < 1
    ):
        raise ValueError(f"{where} must be null or an integer >= 1, got {max_proposals!r}")
    return max_proposals


def top_proposals(proposals: Proposals, max_proposals: int | None) -> Proposals:
    """Each image's ``max_proposals`` best-scored queries (highest ``scores`` first, ties to the lower
    query index), kept in query order; ``proposals`` itself when ``None`` or when there are no more."""
    max_proposals = check_max_proposals(max_proposals)
    if max_proposals is None or proposals.scores.shape[-1] <= max_proposals:
        return proposals
    # A stable sort on the negated scores keeps equal scores in query order.
    best = torch.sort(-proposals.scores.float(), dim=-1, stable=True).indices[:, :max_proposals]
    keep = best.sort(dim=-1).values
    rows = torch.arange(keep.shape[0], device=keep.device)[:, None]

    def pick(tensor: torch.Tensor) -> torch.Tensor:
        return tensor[rows, keep]

    def pick_optional(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else pick(tensor)

    return Proposals(
        mask_probs=pick(proposals.mask_probs),
        class_probs=pick(proposals.class_probs),
        scores=pick(proposals.scores),
        masks=pick_optional(proposals.masks),
        mask_logits=pick_optional(proposals.mask_logits),
    )
