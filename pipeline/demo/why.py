"""Why a segmentation came out as it did: the proposals that decided it, with each opinion's top classes.

:func:`explain` runs a segmenter's steps one by one (the proposer, CLIP on the binarised
proposals, the variant's ensemble, the semantic map) instead of :meth:`ProposalSegmenter.segment`,
so that it can keep what each step said; its labels are the same as ``segment``'s (tested).
A pixel is *decided* by the proposal with the largest share ``p(c|q) · mask_q`` of its winning
class ``c``; the proposals that decide at least ``min_share`` of the image are listed, largest
first, with their objectness and the top classes of the proposer (its probabilities, which sum
to the objectness), of CLIP (for the crop path, its masked crop; for the one-pass variants,
the pooled mask) and of the ensemble. :func:`outline_picture` draws them on the prediction picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy.ndimage import distance_transform_edt

from core.classnames import display_names
from model.proposal_segmenter import ProposalSegmenter, image_to_tensor
from model.scoring import predict_labels
from pipeline.evaluation.label_overlay import class_colour, font
from pipeline.evaluation.miou import resize_label
from pipeline.mining.pair_pictures import eroded

TOP_CLASSES = 3
MAX_PROPOSALS = 8
MIN_SHARE = 0.01


@dataclass(frozen=True)
class ProposalView:
    """One deciding proposal: its query index, the share of the image it decides, its objectness,
    its binary mask and ``(class name, probability)`` top lists of the proposer, CLIP and the ensemble."""

    query: int
    decided: float
    objectness: float
    mask: np.ndarray
    proposer: list[tuple[str, float]]
    clip: list[tuple[str, float]]
    ensemble: list[tuple[str, float]]

    @property
    def winner(self) -> str:
        return self.ensemble[0][0]


@dataclass(frozen=True)
class Explanation:
    """The labels (as ``segment`` gives them) and the deciding proposals, largest first."""

    labels: np.ndarray
    proposals: list[ProposalView]

    def at_size(self, size: tuple[int, int]) -> Explanation:
        """The same explanation with labels and masks resized (nearest) to ``size`` ``(height, width)``."""
        if tuple(self.labels.shape) == tuple(size):
            return self
        views = [
            replace(view, mask=resize_label(view.mask.astype(np.int32), size).astype(bool)) for view in self.proposals
        ]
        return Explanation(resize_label(self.labels, size), views)


def top_classes(probs: torch.Tensor, names: Sequence[str], k: int = TOP_CLASSES) -> list[tuple[str, float]]:
    """The ``k`` most probable ``(name, probability)`` of a ``[C]`` row, ties to the lower index."""
    values = probs.float().cpu().numpy()
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]
    return [(names[i], round(float(values[i]), 4)) for i in order]


@torch.no_grad()
def explain(
    segmenter: ProposalSegmenter,
    image: np.ndarray,
    class_names: Sequence[str],
    seen: Sequence[bool] | np.ndarray | None = None,
    *,
    max_proposals: int = MAX_PROPOSALS,
    min_share: float = MIN_SHARE,
) -> Explanation:
    """Segment ``image`` (``H×W×3 uint8``) among ``class_names`` step by step; see the module docstring."""
    if len(class_names) == 0:
        raise ValueError("class_names is empty")
    tensor = image_to_tensor(image, segmenter.device)
    device = segmenter.device
    text = segmenter.text_embeddings(class_names).to(device)
    proposer_text = text if segmenter.proposer_text is None else segmenter.proposer_text(class_names).to(device)
    props = segmenter.propose(tensor[None], proposer_text)
    masks = props.masks
    assert masks is not None  # binarised at the segmenter's mask_threshold
    seen_mask = None if seen is None else torch.as_tensor(seen)
    if segmenter.clip_has_say(len(class_names), seen_mask):
        p_clip = segmenter.clip_probs([tensor], [masks[0]], text)[0]
    else:  # the proposer decides alone, as in segment()
        p_clip = props.class_probs[0]
    probs = segmenter.combine(props, p_clip, seen_mask)
    mask_probs = props.mask_probs[0]
    labels = predict_labels(probs, mask_probs)
    decided = deciding_proposals(probs, mask_probs, labels)
    names = display_names(class_names)
    counts = np.bincount(decided[decided >= 0].ravel(), minlength=probs.shape[0])
    order = sorted(
        (q for q in range(len(counts)) if counts[q] >= min_share * decided.size), key=lambda q: (-counts[q], q)
    )[:max_proposals]
    views = [
        ProposalView(
            query=q,
            decided=round(float(counts[q] / decided.size), 4),
            objectness=round(float(props.scores[0, q]), 4),
            mask=masks[0, q].cpu().numpy(),
            proposer=top_classes(props.class_probs[0, q], names),
            clip=top_classes(p_clip[q], names),
            ensemble=top_classes(probs[q], names),
        )
        for q in order
    ]
    return Explanation(labels.to("cpu", torch.int32).numpy(), views)


def deciding_proposals(probs: torch.Tensor, mask_probs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """``H×W`` int64: per pixel, the query with the largest ``p(label|q) · mask_q`` (-1 where unlabelled)."""
    safe = labels.clamp_min(0)
    out = np.full(tuple(labels.shape), -1, np.int64)
    for top in range(0, labels.shape[0], 64):  # bands of rows bound the [Q, rows, W] scores
        band = safe[top : top + 64]
        contribution = probs[:, band] * mask_probs[:, top : top + 64].to(probs.device)
        out[top : top + 64] = contribution.argmax(0).cpu().numpy()
    out[labels.cpu().numpy() < 0] = -1
    return out


def outline_picture(picture: Image.Image, explanation: Explanation, class_names: Sequence[str]) -> Image.Image:
    """A copy of ``picture`` (the prediction picture: the image's pixels top left) with each listed proposal's
    outline (black outside, white inside) and its number (as in the table) in a box of its ensemble class's
    colour, at the mask's point farthest from its edge and from the numbers placed before it."""
    pixels = np.array(picture.convert("RGB"))
    names = display_names(class_names)
    for view in explanation.proposals:
        once = eroded(view.mask)
        region = pixels[: view.mask.shape[0], : view.mask.shape[1]]
        region[view.mask & ~once] = (0, 0, 0)
        region[once & ~eroded(once)] = (255, 255, 255)
    out = Image.fromarray(pixels)
    draw = ImageDraw.Draw(out)
    face = font()
    taken = np.zeros(pixels.shape[:2], bool)  # around the numbers already placed
    for number, view in enumerate(explanation.proposals, start=1):
        if not view.mask.any():
            continue
        depth = distance_transform_edt(np.pad(view.mask, 1))[1:-1, 1:-1]
        free = np.where(taken[: depth.shape[0], : depth.shape[1]], 0.0, depth)
        y, x = (int(i) for i in np.unravel_index(int(np.argmax(free if free.max() > 0 else depth)), depth.shape))
        taken[max(0, y - 16) : y + 16, max(0, x - 16) : x + 16] = True
        label = str(number)
        half_width = int(face.getlength(label)) // 2 + 3
        draw.rectangle(
            [x - half_width, y - 8, x + half_width, y + 7],
            fill=class_colour(names.index(view.winner)),
            outline=(0, 0, 0),
        )
        draw.text(
            (x - half_width + 3, y - 7), label, fill=(255, 255, 255), font=face, stroke_width=1, stroke_fill=(0, 0, 0)
        )
    return out
