"""The symmetric CLIP contrastive loss, aware of duplicate texts in a batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: torch.Tensor | float,
    group_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of image->text and text->image cross-entropy over a batch of B matching pairs.

    ``image_emb`` and ``text_emb`` are ``[B, D]`` and L2-normalised (not renormalised
    here); pair ``i`` is ``(image_emb[i], text_emb[i])``. ``logit_scale`` is the
    multiplier itself (open_clip's ``model.logit_scale.exp()``), not its log.

    ``group_ids`` (``[B]`` integers, e.g. noun ids): pairs ``i != j`` with the same id
    are not treated as negatives of each other; their logits are masked out in both
    directions. Why: mined batches often hold several crops of the same noun (two
    "dog" crops from different images). Text ``j`` then describes crop ``i`` as well
    as its own, and counting it as a negative would push crop ``i`` away from its own
    noun's text; with identical texts the plain loss could not even go below
    ``log(k)`` for a group of ``k``. Masking removes these false negatives.
    """
    if image_emb.dim() != 2 or image_emb.shape != text_emb.shape:
        raise ValueError(
            f"image and text embeddings must both be [B, D], got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
        )
    batch = image_emb.shape[0]
    if batch == 0:
        raise ValueError("contrastive loss needs a non-empty batch")
    logits = logit_scale * image_emb @ text_emb.t()
    if group_ids is not None:
        group_ids = torch.as_tensor(group_ids, device=logits.device)
        if group_ids.shape != (batch,):
            raise ValueError(f"group_ids must have shape [{batch}], got {tuple(group_ids.shape)}")
        same_group = group_ids[:, None] == group_ids[None, :]
        same_group.fill_diagonal_(False)
        logits = logits.masked_fill(same_group, float("-inf"))
    targets = torch.arange(batch, device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
