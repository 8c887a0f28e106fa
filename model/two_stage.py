"""The two-stage open-vocabulary segmenter: proposals, CLIP on masked crops, ensemble.

``TwoStageSegmenter.segment(image, class_names)`` runs, for one image (steps 1 and 4, the
stored proposals, masks from elsewhere and the diagnostics are
:class:`model.proposal_segmenter.ProposalSegmenter`'s, shared with the one-pass segmenter):

1. the proposer → soft masks ``[Q, H, W]`` at the image's size and its class
   probabilities over the given names (softmax over C+1, no-object dropped);
2. masks binarised at ``mask_threshold`` → masked crops of *all* the image's
   proposals, encoded by CLIP in one batch (with the mask prompts of the bundle
   when it has them) → CLIP's class probabilities (uniform for empty masks);
3. the geometric ensemble ``p_prop^(1-λ) · p_clip^λ`` (per-class exponents for
   seen/unseen classes when a ``seen`` mask is given);
4. the semantic map ``Σ_q p(c|q) · mask_q`` with the *soft* masks, argmax.

The proposer's outputs can also be given (stored once per benchmark, see
:meth:`TwoStageSegmenter.propose_images`): ``segment_batch`` and ``segment_oracle_batch``
take them as ``proposals`` and then run no proposer; the result is the same.

``segment_with_masks`` classifies masks another generator made (SAM, ...) the same
way, without a proposer: CLIP's probabilities times each mask's score, then step 4
with the binary masks.

Two diagnostics of the paper's analysis share the same parts:
``segment_oracle`` (each proposal gets the ground-truth class it overlaps most:
how good are the proposals) and ``classify_gt_segments`` (CLIP classifies the
ground-truth segments: how good is the classifier).

Label maps come back as ``np.int32`` ``[H, W]`` (the project's in-memory label
convention): 0-based indices into ``class_names``, -1 where no proposal gives
any evidence (or, for ground-truth segments, where the ground truth is ignored).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

import torch

from core.params import check_fractions
from model.clip import ClipBundle
from model.crops import masked_crops
from model.proposal_segmenter import ProposalOptions, ProposalSegmenter
from model.proposer.inference import Proposals
from model.proposer.network import MaskProposer
from model.scoring import SeenMask, clip_class_probs, ensemble, ensemble_exponents


class TwoStageSegmenter(ProposalSegmenter):
    """A proposer and a CLIP, combined as in OVSeg: CLIP classifies masked crops.

    ``proposer``, ``proposer_clip``, ``mask_threshold``, ``templates``, ``max_proposals``: see
    :class:`model.proposal_segmenter.ProposalSegmenter`.

    ``lam`` is CLIP's exponent in the ensemble; with a ``seen`` mask at call time,
    seen classes use ``lam_seen`` and unseen classes ``lam_unseen`` when those are
    set (see :func:`model.scoring.ensemble_exponents`). ``use_mask_prompts`` feeds the crop masks to the
    bundle's mask prompts when it has any. Crops are encoded in chunks of
    ``clip_batch_size``.
    """

    def __init__(
        self,
        proposer: MaskProposer | None,
        clip: ClipBundle,
        *,
        lam: float = 0.7,
        lam_seen: float | None = None,
        lam_unseen: float | None = None,
        expand_ratio: float = 0.0,
        use_mask_prompts: bool = True,
        clip_batch_size: int = 256,
        **options: Unpack[ProposalOptions],
    ):
        if clip_batch_size < 1:
            raise ValueError(f"clip_batch_size must be >= 1, got {clip_batch_size}")
        check_fractions((("lam", lam), ("lam_seen", lam_seen), ("lam_unseen", lam_unseen)))
        super().__init__(proposer, clip, **options)
        self.lam, self.lam_seen, self.lam_unseen = float(lam), lam_seen, lam_unseen
        self.expand_ratio = float(expand_ratio)
        self.use_mask_prompts = use_mask_prompts
        self.clip_batch_size = int(clip_batch_size)

    @torch.no_grad()
    def clip_probs(
        self, images: Sequence[torch.Tensor], binary_masks: Sequence[torch.Tensor], text_emb: torch.Tensor
    ) -> list[torch.Tensor]:
        """CLIP's class probabilities ``[Q_i, C]`` for each image's bool masks ``[Q_i, H_i, W_i]``.

        The crops of all images' non-empty masks are encoded together (in chunks of
        ``clip_batch_size``); empty masks get the uniform distribution.
        """
        crops, crop_masks, valid = [], [], []
        for image, masks in zip(images, binary_masks, strict=True):
            mc = masked_crops(
                image,
                masks.to(image.device),
                size=self.clip.image_size,
                mean=self.clip.mean,
                std=self.clip.std,
                expand_ratio=self.expand_ratio,
            )
            crops.append(mc.crops[mc.valid])
            crop_masks.append(mc.crop_masks[mc.valid])
            valid.append(mc.valid)
        embeddings = self._encode_crops(torch.cat(crops), torch.cat(crop_masks))
        out, start = [], 0
        for v in valid:
            n_valid = int(v.sum())
            dense = torch.zeros(v.shape[0], text_emb.shape[1], device=embeddings.device)
            dense[v.to(embeddings.device)] = embeddings[start : start + n_valid]
            start += n_valid
            out.append(clip_class_probs(dense, text_emb, self.logit_scale, v))
        return out

    def _encode_crops(self, crops: torch.Tensor, crop_masks: torch.Tensor) -> torch.Tensor:
        """Normalised CLIP embeddings ``[N, D]`` of normalised crops, in chunks."""
        if crops.shape[0] == 0:
            return torch.empty(0, self.clip.embed_dim, device=self.clip.device)
        prompted = self.use_mask_prompts and self.clip.prompts is not None
        chunks = []
        for start in range(0, crops.shape[0], self.clip_batch_size):
            stop = start + self.clip_batch_size
            chunks.append(self.clip.encode_image(crops[start:stop], crop_masks[start:stop] if prompted else None))
        return torch.cat(chunks)

    def clip_has_say(self, num_classes: int, seen: SeenMask | None) -> bool:
        """False when every class's CLIP exponent is 0 (the proposer decides alone)."""
        exponents = ensemble_exponents(num_classes, self.lam, seen, self.lam_seen, self.lam_unseen)
        return not bool((exponents == 0).all())

    def combine(self, props: Proposals, p_clip: torch.Tensor, seen: SeenMask | None) -> torch.Tensor:
        """The class scores ``[Q, C]`` of one image's proposals: OVSeg's geometric ensemble."""
        return ensemble(props.class_probs[0], p_clip, self.lam, seen, self.lam_seen, self.lam_unseen)
