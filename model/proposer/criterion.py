"""MaskFormer's set-prediction loss for the proposer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import LossConfig
from .losses import dice_loss, mask_loss
from .matcher import HungarianMatcher
from .targets import GridTargets, SemanticTargets, grid_targets


class SetCriterion(nn.Module):
    """Matches predictions to targets per layer and sums the weighted losses.

    For each supervised layer (the last, plus every ``aux_outputs`` entry when
    ``deep_supervision``), queries are Hungarian-matched to targets, then

    - ``ce``: cross-entropy over C+1 classes for every query; unmatched queries
      target "no object" (index C), whose class weight is ``no_object_weight``
      (PyTorch's weighted mean: divided by the sum of the weights used);
    - ``mask``: sigmoid focal or BCE loss (``mask_loss``), mean over valid pixels
      of the stride-4 grid, summed over matched masks / number of target masks;
    - ``dice``: dice loss per matched mask, summed / number of target masks.

    Ignore pixels (label -1) contribute to no mask loss. Returns ``loss`` (the
    weighted total over all supervised layers, for ``backward``), the last
    layer's unweighted ``loss_ce``, ``loss_mask``, ``loss_dice``, and the weighted
    ``loss_aux`` total of the auxiliary layers (0 without deep supervision).

    A batch split across processes passes ``sum_across`` (a tensor's sum over the
    processes): the number of target masks and the cross-entropy's weight sum are then
    those of the whole batch, and each process's terms are its share of the whole
    batch's terms (the shares sum to them).
    """

    def __init__(self, loss: LossConfig):
        super().__init__()
        self.config = loss
        self.matcher = HungarianMatcher(loss)

    def forward(
        self,
        outputs: dict,
        targets: Sequence[SemanticTargets],
        sum_across: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        logits, masks = outputs["pred_logits"], outputs["pred_masks"]
        if len(targets) != len(logits):
            raise ValueError(f"{len(targets)} targets for a batch of {len(logits)} images")
        num_classes = logits.shape[-1] - 1
        for i, target in enumerate(targets):
            if len(target.classes) and int(target.classes.max()) >= num_classes:
                raise ValueError(
                    f"image {i} of the batch has class {int(target.classes.max())} but only "
                    f"{num_classes} text embeddings were given"
                )
        grids = [grid_targets(t.to(masks.device), tuple(masks.shape[-2:])) for t in targets]
        num_masks = sum(len(g.classes) for g in grids)
        if sum_across is not None:
            num_masks = int(sum_across(torch.tensor([num_masks], device=masks.device)).item())
        num_masks = max(num_masks, 1)
        final = self.layer_losses(logits, masks, grids, num_masks, sum_across)
        cfg = self.config
        aux_total = logits.new_zeros((), dtype=torch.float32)
        if cfg.deep_supervision:
            for aux in outputs.get("aux_outputs", []):
                terms = self.layer_losses(aux["pred_logits"], aux["pred_masks"], grids, num_masks, sum_across)
                aux_total = aux_total + self.weighted(terms)
        return {
            "loss": self.weighted(final) + aux_total,
            "loss_ce": final["ce"],
            "loss_mask": final["mask"],
            "loss_dice": final["dice"],
            "loss_aux": aux_total,
        }

    def weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        return cfg.class_weight * terms["ce"] + cfg.mask_weight * terms["mask"] + cfg.dice_weight * terms["dice"]

    def layer_losses(
        self,
        logits: torch.Tensor,
        masks: torch.Tensor,
        grids: Sequence[GridTargets],
        num_masks: int,
        sum_across: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Unweighted ``ce``, ``mask`` and ``dice`` for one layer's predictions."""
        cfg = self.config
        device = logits.device
        indices = [(q.to(device), t.to(device)) for q, t in self.matcher(logits, masks, grids)]
        batch, queries, num_logits = logits.shape
        target_classes = torch.full((batch, queries), num_logits - 1, dtype=torch.int64, device=device)
        for b, ((q, t), grid) in enumerate(zip(indices, grids)):
            target_classes[b, q] = grid.classes[t]
        class_weight = torch.ones(num_logits, device=device)
        class_weight[-1] = cfg.no_object_weight
        if sum_across is None:
            ce = F.cross_entropy(logits.float().transpose(1, 2), target_classes, weight=class_weight)
        else:  # the weighted mean over the whole batch: local weighted sum / the batch's weight sum
            ce = F.cross_entropy(
                logits.float().transpose(1, 2), target_classes, weight=class_weight, reduction="sum"
            ) / sum_across(class_weight[target_classes].sum())

        pred = torch.cat([masks[b, q] for b, (q, _) in enumerate(indices)]).float().flatten(1)
        soft = torch.cat([g.soft[t] for (_, t), g in zip(indices, grids)]).flatten(1)
        weight = torch.cat([g.weight.flatten()[None].expand(len(t), -1) for (_, t), g in zip(indices, grids)])
        if len(pred):
            mask = mask_loss(pred, soft, weight, cfg.mask_loss, cfg.focal_alpha, cfg.focal_gamma).sum() / num_masks
            dice = dice_loss(pred, soft, weight).sum() / num_masks
        else:  # no target in the whole batch: a zero that still reaches the masks, so backward works
            mask = dice = masks.sum() * 0.0
        return {"ce": ce, "mask": mask, "dice": dice}
