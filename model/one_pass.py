"""The one-pass segmenter: proposals classified from one CLIP pass per image (maskpool or the Mask-Adapter).

Same proposals, diagnostics and semantic map as the two-stage segmenter (both are
:class:`model.proposal_segmenter.ProposalSegmenter`); what changes is how a proposal is
classified and how the two opinions are combined:

* each image is resized to a multiple of the tower's stride and encoded once
  (:class:`DenseClip`); its binarised proposals are pooled from that pass — directly
  (``maskpool``: the mask's share of each grid cell as weights) or through a trained
  :class:`MaskAdapter`, whose input is binarised at ``adapter_mask_threshold`` (the reference's
  ``MASK_ADAPTER.MASK_THRESHOLD`` 0.5, as in its training), not at the crop path's ``mask_threshold``;
* CLIP's class probabilities are ``softmax(100 · cos)`` (the one temperature rule,
  :data:`model.scoring.CLIP_LOGIT_SCALE`), uniform for empty masks;
* Mask-Adapter's ensemble (:func:`model.scoring.adapter_ensemble`) with ``alpha`` for
  seen and ``beta`` for unseen classes; ``alpha = beta = 1`` uses CLIP's classes alone,
  with the proposer's objectness.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

import torch
import torch.nn.functional as F

from core.params import check_fractions
from model.clip import ClipBundle
from model.dense_clip import DenseClip, mask_weights
from model.mask_adapter import MaskAdapter
from model.proposal_segmenter import ProposalOptions, ProposalSegmenter
from model.proposer.inference import Proposals
from model.proposer.network import MaskProposer
from model.scoring import SeenMask, adapter_ensemble, clip_class_probs


class OnePassSegmenter(ProposalSegmenter):
    """A proposer and a CLIP run once per image; ``adapter`` (optional) classifies the masks, else plain pooling.

    ``pooling``/``attention_depth`` configure plain pooling (an adapter brings its own).
    ``adapter_mask_threshold``: binarises the proposals the adapter reads (``None``: ``mask_threshold``).
    ``image_batch_size``: images per CLIP pass. ``proposer``, ``proposer_clip``, ``mask_threshold``, ``templates``,
    ``max_proposals``: see :class:`model.proposal_segmenter.ProposalSegmenter`.
    """

    def __init__(
        self,
        proposer: MaskProposer | None,
        clip: ClipBundle,
        *,
        adapter: MaskAdapter | None = None,
        pooling: str = "attention",
        attention_depth: int | None = None,
        alpha: float = 0.7,
        beta: float = 0.9,
        adapter_mask_threshold: float | None = None,
        image_batch_size: int = 16,
        **options: Unpack[ProposalOptions],
    ):
        check_fractions((("alpha", alpha), ("beta", beta)))
        super().__init__(proposer, clip, **options)
        self.adapter = adapter.eval() if adapter is not None else None
        if adapter is not None:
            self.dense = adapter.dense_clip(clip.model)
        else:
            self.dense = DenseClip(clip.model, pooling=pooling, attention_depth=attention_depth)
        self.alpha, self.beta = float(alpha), float(beta)
        self.image_batch_size = int(image_batch_size)
        if adapter_mask_threshold is not None and not 0.0 <= adapter_mask_threshold < 1.0:
            raise ValueError(f"adapter_mask_threshold must lie in [0, 1), got {adapter_mask_threshold}")
        self.adapter_mask_threshold = None if adapter_mask_threshold is None else float(adapter_mask_threshold)

    def clip_masks(self, props: Proposals) -> torch.Tensor:
        """The adapter reads the proposals binarised at its own threshold (``maskpool`` at ``mask_threshold``)."""
        if self.adapter is None or self.adapter_mask_threshold is None:
            return super().clip_masks(props)
        return props.mask_probs[0] > self.adapter_mask_threshold

    @torch.no_grad()
    def mask_embeddings(self, images: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Embeddings ``[Q_i, D]`` (not normalised) of each image's masks ``[Q_i, H_i, W_i]``; one pass per image."""
        out: dict[int, torch.Tensor] = {}
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault(tuple(image.shape[-2:]), []).append(i)
        for (height, width), members in by_size.items():
            size = self.dense.input_size(height, width)
            for start in range(0, len(members), self.image_batch_size):
                chunk = members[start : start + self.image_batch_size]
                batch = torch.stack([images[i] for i in chunk]).to(self.clip.device)
                if size != (height, width):
                    batch = F.interpolate(batch, size=size, mode="bilinear", align_corners=False)
                dense = self.dense.encode((batch - self.clip.mean[:, None, None]) / self.clip.std[:, None, None])
                projected = self.dense.projected(dense) if self.adapter is not None else None
                for j, i in enumerate(chunk):
                    out[i] = self._embed_one(dense, j, masks[i].to(self.clip.device), projected)
        return [out[i] for i in range(len(images))]

    def _embed_one(self, dense, j: int, masks: torch.Tensor, projected: torch.Tensor | None) -> torch.Tensor:
        if masks.shape[0] == 0:
            return torch.empty(0, self.clip.embed_dim, device=self.clip.device)
        one = dense.select(torch.tensor([j], device=dense.features.device))
        if self.adapter is None:
            return self.dense.pool(one, mask_weights(masks, one.grid)[None])[0].float()
        assert projected is not None  # computed whenever there is an adapter
        return self.adapter.embed(self.dense, one, masks[None].float(), projected[j : j + 1])[0].float()

    @torch.no_grad()
    def clip_probs(
        self, images: Sequence[torch.Tensor], binary_masks: Sequence[torch.Tensor], text_emb: torch.Tensor
    ) -> list[torch.Tensor]:
        """CLIP's class probabilities ``[Q_i, C]`` from the one pass (uniform for empty masks)."""
        embeddings = self.mask_embeddings(images, binary_masks)
        return [
            clip_class_probs(emb, text_emb, self.logit_scale, masks.flatten(1).any(1))
            if emb.shape[0]
            else torch.empty(0, text_emb.shape[0], device=text_emb.device)
            for emb, masks in zip(embeddings, binary_masks)
        ]

    def clip_has_say(self, num_classes: int, seen: SeenMask | None) -> bool:
        return self.alpha > 0 or self.beta > 0

    def combine(self, props: Proposals, p_clip: torch.Tensor, seen: SeenMask | None) -> torch.Tensor:
        return adapter_ensemble(props.class_probs[0], p_clip, self.alpha, self.beta, seen)
