"""What the two-stage and the one-pass segmenters share: proposals, their semantic map, the diagnostics.

:class:`ProposalSegmenter` runs the proposer (or takes its stored outputs), asks its subclass for
CLIP's class probabilities of the binarised masks (:meth:`~ProposalSegmenter.clip_probs`) and
how to combine them with the proposer's (:meth:`~ProposalSegmenter.combine`), and paints the
semantic map ``Σ_q p(c|q) · mask_q`` with the soft masks, argmax. The same parts classify masks
from another generator (``segment_with_masks``) and run the paper's two diagnostics
(``segment_oracle``, ``classify_gt_segments``). :class:`model.two_stage.TwoStageSegmenter`
classifies masked crops (OVSeg); :class:`model.one_pass.OnePassSegmenter` pools one CLIP pass
per image (Mask-Adapter's family).

Label maps come back as ``np.int32`` ``[H, W]`` (the project's in-memory label
convention): 0-based indices into ``class_names``, -1 where no proposal gives
any evidence (or, for ground-truth segments, where the ground truth is ignored).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import torch

from model.clip import ClipBundle
from model.oracle import as_label_tensor, gt_segments, oracle_semantic_map, paint_segments
from model.proposer.inference import Proposals, check_max_proposals, propose, top_proposals
from model.proposer.network import MaskProposer
from model.scoring import CLIP_LOGIT_SCALE, SeenMask, predict_labels, scores_to_labels
from model.text import TextClassifier

ImageLike = np.ndarray | torch.Tensor


class ProposalOptions(TypedDict, total=False):
    """The keyword arguments of :class:`ProposalSegmenter` a subclass passes on as they are (defaults there)."""

    mask_threshold: float
    templates: Sequence[str] | None
    proposer_clip: ClipBundle | None
    max_proposals: int | None


def image_to_tensor(image: ImageLike, device: torch.device) -> torch.Tensor:
    """An image as float32 ``[3, H, W]`` in 0..1 on ``device``.

    NumPy arrays are ``H×W×3`` (the project's in-memory layout), tensors are
    ``[3, H, W]``; uint8 is scaled by 1/255, floats are taken as already in 0..1.
    """
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"a NumPy image must be H×W×3, got shape {image.shape}")
        if not image.flags.writeable:  # e.g. np.asarray of a PIL image; torch wants writable memory
            image = image.copy()
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    elif isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"an image tensor must be [3, H, W], got shape {tuple(image.shape)}")
        tensor = image
    else:
        raise TypeError(f"expected a NumPy array or a torch tensor, got {type(image).__name__}")
    if tensor.shape[1] == 0 or tensor.shape[2] == 0:
        raise ValueError(f"empty image of shape {tuple(tensor.shape)}")
    if tensor.dtype == torch.uint8:
        return tensor.to(device).float().div_(255.0)
    if not tensor.dtype.is_floating_point:
        raise ValueError(f"images must be uint8 or float in 0..1, got dtype {tensor.dtype}")
    return tensor.to(device=device, dtype=torch.float32)


class ProposalSegmenter:
    """A proposer and a CLIP, inference only (both put in eval mode); subclasses say how CLIP
    classifies a mask and how its opinion meets the proposer's.

    ``proposer`` may be ``None`` for a CLIP-only segmenter that can only
    :meth:`classify_gt_segments`; otherwise its ``text_dim`` must equal the CLIP's
    embedding size (the proposer scores proposals against the CLIP's text embeddings).
    ``proposer_clip``: when the classifying CLIP is not the one whose text tower the
    proposer was trained against (a Mask-Adapter's own ConvNeXt), that CLIP embeds the
    class names for the proposer. The proposer always gets template embeddings: a CLIP
    with learned text prompts (zsseg.baseline) uses them on CLIP's side only.
    ``mask_threshold`` binarises the proposals. ``max_proposals``: each image keeps its that
    many best-scored proposals (:func:`model.proposer.top_proposals`; ``None``: all).
    Both families classify at :data:`logit_scale` (:data:`model.scoring.CLIP_LOGIT_SCALE`: the one
    temperature rule), whatever scale the CLIP learned.
    """

    logit_scale: float = CLIP_LOGIT_SCALE

    def __init__(
        self,
        proposer: MaskProposer | None,
        clip: ClipBundle,
        *,
        mask_threshold: float = 0.4,
        templates: Sequence[str] | None = None,
        proposer_clip: ClipBundle | None = None,
        max_proposals: int | None = None,
    ):
        if not 0.0 <= mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must lie in [0, 1), got {mask_threshold}")
        text_clip = proposer_clip if proposer_clip is not None else clip
        if proposer is not None and proposer.config.text_dim != text_clip.embed_dim:
            raise ValueError(
                f"the proposer '{proposer.config.name}' expects text embeddings of size "
                f"{proposer.config.text_dim}, the CLIP gives {text_clip.embed_dim}"
            )
        self.proposer = proposer.eval() if proposer is not None else None
        self.clip = clip
        self.clip.model.eval()
        self.mask_threshold = float(mask_threshold)
        self.max_proposals = check_max_proposals(max_proposals)
        self.text = TextClassifier(clip, templates)
        if proposer_clip is not None or clip.text_prompts is not None:
            self.proposer_text: TextClassifier | None = TextClassifier(text_clip, templates, learned_prompts=False)
        else:
            self.proposer_text = None

    @property
    def device(self) -> torch.device:
        """Where images and proposals live: the proposer's device (the CLIP's without a proposer)."""
        if self.proposer is None:
            return self.clip.device
        return next(self.proposer.parameters()).device

    # ------------------------------------------------------------------ building blocks
    def text_embeddings(self, class_names: Sequence[str]) -> torch.Tensor:
        """Prompt-ensembled CLIP text embeddings ``[C, D]`` of the names (cached per synonym)."""
        if len(class_names) == 0:
            raise ValueError("class_names is empty")
        return self.text(class_names)

    def proposer_embeddings(self, class_names: Sequence[str]) -> torch.Tensor:
        """What the proposer scores ``class_names`` against (``[C, D]`` on the device): the CLIP's
        text embeddings, or ``proposer_clip``'s when set."""
        return self._proposer_embeddings(class_names, self.text_embeddings(class_names).to(self.device))

    def _proposer_embeddings(self, class_names: Sequence[str], text_emb: torch.Tensor) -> torch.Tensor:
        """What the proposer scores against: ``text_emb``, or the names embedded with templates by
        ``proposer_clip`` (or by the CLIP when ``text_emb`` comes from learned text prompts)."""
        if self.proposer_text is None:
            return text_emb
        return self.proposer_text(class_names).to(self.device)

    def _resolve_text(self, class_names: Sequence[str], text_emb: torch.Tensor | None) -> torch.Tensor:
        if text_emb is None:
            return self.text_embeddings(class_names)
        if text_emb.ndim != 2 or text_emb.shape[0] != len(class_names):
            raise ValueError(
                f"text_emb must be [C={len(class_names)}, D] for the {len(class_names)} class names, "
                f"got {tuple(text_emb.shape)}"
            )
        return text_emb

    @torch.no_grad()
    def propose(self, images: torch.Tensor, text_emb: torch.Tensor) -> Proposals:
        """The proposer on float images ``[B, 3, H, W]`` (0..1), masks binarised at the threshold,
        the ``max_proposals`` best-scored kept."""
        if self.proposer is None:
            raise ValueError("this segmenter has no proposer (it can only classify ground-truth segments)")
        proposals = propose(self.proposer, images.to(self.device), text_emb, mask_threshold=self.mask_threshold)
        return top_proposals(proposals, self.max_proposals)

    # ------------------------------------------------------------------ what each segmenter defines
    def clip_masks(self, props: Proposals) -> torch.Tensor:
        """One image's proposals as CLIP's classifier reads them, ``[Q, H, W]`` bool: binarised at
        ``mask_threshold`` (a segmenter whose classifier has a threshold of its own overrides this)."""
        return props.binary_masks()[0]

    def clip_probs(
        self, images: Sequence[torch.Tensor], binary_masks: Sequence[torch.Tensor], text_emb: torch.Tensor
    ) -> list[torch.Tensor]:
        """CLIP's class probabilities ``[Q_i, C]`` for each image's bool masks ``[Q_i, H_i, W_i]``
        (uniform for empty masks)."""
        raise NotImplementedError

    def clip_has_say(self, num_classes: int, seen: SeenMask | None) -> bool:
        """False when CLIP's probabilities would not change the scores (the proposer decides alone)."""
        raise NotImplementedError

    def combine(self, props: Proposals, p_clip: torch.Tensor, seen: SeenMask | None) -> torch.Tensor:
        """The class scores ``[Q, C]`` of one image's proposals from the proposer's and CLIP's opinions."""
        raise NotImplementedError

    # ------------------------------------------------------------------ segmentation
    @torch.no_grad()
    def segment(
        self,
        image: ImageLike,
        class_names: Sequence[str],
        text_emb: torch.Tensor | None = None,
        seen: SeenMask | None = None,
    ) -> np.ndarray:
        """Label map ``[H, W]`` (np.int32, indices into ``class_names``) of one image.

        ``image``: uint8 or 0..1 float, ``H×W×3`` array or ``[3, H, W]`` tensor.
        ``text_emb``: precomputed ``[C, D]`` embeddings of ``class_names`` (else
        computed and cached). ``seen``: ``[C]`` bool, which classes are seen (for the ensemble's
        per-class exponents).
        """
        return self.segment_batch([image], class_names, text_emb, seen)[0]

    @torch.no_grad()
    def segment_batch(
        self,
        images: Sequence[ImageLike],
        class_names: Sequence[str],
        text_emb: torch.Tensor | None = None,
        seen: SeenMask | None = None,
        proposals: Sequence[Proposals] | None = None,
    ) -> list[np.ndarray]:
        """:meth:`segment` for several images: one proposer batch per run of equal sizes,
        one :meth:`clip_probs` call over all their masks.

        ``proposals``: each image's proposer outputs (batch dimension 1, with ``masks``,
        as :meth:`propose_images` gives them) instead of running the proposer."""
        if len(images) == 0:
            return []
        text_emb = self._resolve_text(class_names, text_emb).to(self.device)
        tensors = [image_to_tensor(image, self.device) for image in images]
        proposals = self._given_or_proposed(tensors, class_names, text_emb, proposals)
        if self.clip_has_say(len(class_names), seen):
            clip_probs = self.clip_probs(tensors, [self.clip_masks(p) for p in proposals], text_emb)
        else:  # proposer only: skip CLIP
            clip_probs = [p.class_probs[0] for p in proposals]
        labels = []
        for props, p_clip in zip(proposals, clip_probs):
            probs = self.combine(props, p_clip, seen)
            labels.append(_to_numpy(predict_labels(probs, props.mask_probs[0])))
        return labels

    @torch.no_grad()
    def propose_images(
        self, images: Sequence[ImageLike], class_names: Sequence[str], text_emb: torch.Tensor | None = None
    ) -> list[Proposals]:
        """The proposer's outputs for each image (batch dimension 1, masks binarised, stride-4
        logits kept), exactly as :meth:`segment_batch` computes them for the same images."""
        text_emb = self._resolve_text(class_names, text_emb).to(self.device)
        tensors = [image_to_tensor(image, self.device) for image in images]
        return self._propose_grouped(tensors, self._proposer_embeddings(class_names, text_emb))

    def _given_or_proposed(
        self,
        tensors: list[torch.Tensor],
        class_names: Sequence[str],
        text_emb: torch.Tensor,
        proposals: Sequence[Proposals] | None,
    ) -> list[Proposals]:
        """``proposals`` checked against the images (moved to the device), or the proposer run on them."""
        if proposals is None:
            return self._propose_grouped(tensors, self._proposer_embeddings(class_names, text_emb))
        if len(proposals) != len(tensors):
            raise ValueError(f"{len(proposals)} proposal sets for {len(tensors)} images")
        out = []
        for i, (tensor, props) in enumerate(zip(tensors, proposals)):
            if props.masks is None or props.mask_probs.shape[0] != 1:
                raise ValueError(f"proposals of image {i}: one image's outputs with binarised masks are needed")
            if tuple(props.mask_probs.shape[-2:]) != tuple(tensor.shape[1:]):
                raise ValueError(
                    f"proposals of image {i} are {tuple(props.mask_probs.shape[-2:])}, "
                    f"the image is {tuple(tensor.shape[1:])}"
                )
            if props.class_probs.shape[-1] != len(class_names):
                raise ValueError(
                    f"proposals of image {i} score {props.class_probs.shape[-1]} classes, "
                    f"not the {len(class_names)} given"
                )
            out.append(
                Proposals(
                    mask_probs=props.mask_probs.to(self.device),
                    class_probs=props.class_probs.to(self.device),
                    scores=props.scores.to(self.device),
                    masks=props.masks.to(self.device),
                )
            )
        return out

    def _propose_grouped(self, tensors: list[torch.Tensor], text_emb: torch.Tensor) -> list[Proposals]:
        """Per-image proposals (batch dimension 1), batching runs of equally sized images."""
        out: list[Proposals] = []
        start = 0
        while start < len(tensors):
            stop = start + 1
            while stop < len(tensors) and tensors[stop].shape == tensors[start].shape:
                stop += 1
            batch = self.propose(torch.stack(tensors[start:stop]), text_emb)
            out.extend(batch.image(i) for i in range(stop - start))
            start = stop
        return out

    # ------------------------------------------------------------------ masks from elsewhere
    @torch.no_grad()
    def segment_with_masks(
        self,
        image: ImageLike,
        masks: torch.Tensor,
        scores: torch.Tensor,
        class_names: Sequence[str],
        text_emb: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Label map ``[H, W]`` (np.int32) of one image from given masks; no proposer needed.

        ``masks``: bool ``[Q, H, W]`` at the image's size (from any generator);
        ``scores``: ``[Q]``, each mask's objectness. A mask's class scores are CLIP's
        probabilities (:meth:`clip_probs`) times its score; the semantic map is
        ``Σ_q p(c|q) · mask_q``, argmax; pixels no mask covers are -1.
        """
        return self.segment_with_masks_batch([image], [masks], [scores], class_names, text_emb)[0]

    @torch.no_grad()
    def segment_with_masks_batch(
        self,
        images: Sequence[ImageLike],
        masks: Sequence[torch.Tensor],
        scores: Sequence[torch.Tensor],
        class_names: Sequence[str],
        text_emb: torch.Tensor | None = None,
    ) -> list[np.ndarray]:
        """:meth:`segment_with_masks` for several images, all their masks in one :meth:`clip_probs` call."""
        if not len(images) == len(masks) == len(scores):
            raise ValueError(f"{len(images)} images, {len(masks)} mask sets and {len(scores)} score sets")
        if len(images) == 0:
            return []
        text_emb = self._resolve_text(class_names, text_emb).to(self.device)
        tensors = [image_to_tensor(image, self.device) for image in images]
        for tensor, image_masks, image_scores in zip(tensors, masks, scores):
            _check_masks(image_masks, image_scores, (tensor.shape[1], tensor.shape[2]))
        binary = [image_masks.to(self.device) for image_masks in masks]
        probs = self.clip_probs(tensors, binary, text_emb)
        return [
            _to_numpy(predict_labels(p * s.to(p.device, torch.float32)[:, None], m.float()))
            for p, s, m in zip(probs, scores, binary)
        ]

    # ------------------------------------------------------------------ diagnostics
    @torch.no_grad()
    def segment_oracle(
        self,
        image: ImageLike,
        gt: np.ndarray | torch.Tensor,
        class_names: Sequence[str],
        text_emb: torch.Tensor | None = None,
        ignore_index: int = -1,
    ) -> np.ndarray:
        """Label map with every proposal given its best-overlapping ground-truth class.

        The classes come from the binarised masks (see
        :func:`model.oracle.oracle_proposal_labels`), the map from the soft masks as
        in :meth:`segment`; pixels no labelled proposal covers are -1. ``gt`` is
        ``[H, W]`` at the image's size.
        """
        return self.segment_oracle_batch([image], [gt], class_names, text_emb, ignore_index)[0]

    @torch.no_grad()
    def segment_oracle_batch(
        self,
        images: Sequence[ImageLike],
        gts: Sequence[np.ndarray | torch.Tensor],
        class_names: Sequence[str],
        text_emb: torch.Tensor | None = None,
        ignore_index: int = -1,
        proposals: Sequence[Proposals] | None = None,
    ) -> list[np.ndarray]:
        """:meth:`segment_oracle` for several images, proposing runs of equal sizes in one batch
        (``proposals``: given instead, as for :meth:`segment_batch`)."""
        tensors, gt_tensors = self._images_with_gt(images, gts)
        if not tensors:
            return []
        text_emb = self._resolve_text(class_names, text_emb).to(self.device)
        out = []
        proposals = self._given_or_proposed(tensors, class_names, text_emb, proposals)
        for props, gt_t in zip(proposals, gt_tensors):
            scores = oracle_semantic_map(
                props.binary_masks()[0], gt_t, len(class_names), ignore_index, mask_probs=props.mask_probs[0]
            )
            out.append(_to_numpy(scores_to_labels(scores)))
        return out

    @torch.no_grad()
    def classify_gt_segments(
        self,
        image: ImageLike,
        gt: np.ndarray | torch.Tensor,
        class_names: Sequence[str],
        text_emb: torch.Tensor | None = None,
        ignore_index: int = -1,
    ) -> np.ndarray:
        """Label map where each ground-truth segment (one per class present) takes
        CLIP's top class for its masked crop; ignored pixels stay -1."""
        return self.classify_gt_segments_batch([image], [gt], class_names, text_emb, ignore_index)[0]

    @torch.no_grad()
    def classify_gt_segments_batch(
        self,
        images: Sequence[ImageLike],
        gts: Sequence[np.ndarray | torch.Tensor],
        class_names: Sequence[str],
        text_emb: torch.Tensor | None = None,
        ignore_index: int = -1,
    ) -> list[np.ndarray]:
        """:meth:`classify_gt_segments` for several images, all their crops in one CLIP pass."""
        tensors, gt_tensors = self._images_with_gt(images, gts)
        if not tensors:
            return []
        text_emb = self._resolve_text(class_names, text_emb).to(self.device)
        segments = [gt_segments(gt_t, ignore_index)[1] for gt_t in gt_tensors]
        probs = self.clip_probs(tensors, segments, text_emb)
        return [
            _to_numpy(paint_segments(masks, p.argmax(dim=-1).to(masks.device))) for masks, p in zip(segments, probs)
        ]

    def _images_with_gt(
        self, images: Sequence[ImageLike], gts: Sequence[np.ndarray | torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Images as ``[3, H, W]`` floats and ground truths as int64 ``[H, W]``, on the device, sizes checked."""
        if len(images) != len(gts):
            raise ValueError(f"{len(images)} images but {len(gts)} ground-truth maps")
        tensors = [image_to_tensor(image, self.device) for image in images]
        gt_tensors = [as_label_tensor(gt, self.device) for gt in gts]
        for tensor, gt_t in zip(tensors, gt_tensors):
            if gt_t.shape != tensor.shape[1:]:
                raise ValueError(f"gt of shape {tuple(gt_t.shape)} does not match the image {tuple(tensor.shape[1:])}")
        return tensors, gt_tensors


def _check_masks(masks: torch.Tensor, scores: torch.Tensor, size: tuple[int, int]) -> None:
    """``masks`` bool ``[Q, H, W]`` at the image's ``size`` and ``scores`` ``[Q]``, else ``ValueError``."""
    if masks.dtype != torch.bool or masks.ndim != 3 or tuple(masks.shape[1:]) != size:
        raise ValueError(
            f"masks must be bool [Q, {size[0]}, {size[1]}] (the image's size), got {masks.dtype} {tuple(masks.shape)}"
        )
    if tuple(scores.shape) != (masks.shape[0],):
        raise ValueError(f"scores must be [Q={masks.shape[0]}], got {tuple(scores.shape)}")


def _to_numpy(labels: torch.Tensor) -> np.ndarray:
    return labels.to("cpu", torch.int32).numpy()
