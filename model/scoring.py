"""Pure scoring functions of the two-stage segmenter (no models, no IO).

The two-stage recipe: a proposer gives Q soft masks and a distribution over the
C class names for each; CLIP classifies each mask's masked crop; the two
distributions are ensembled geometrically; the semantic map sums each proposal's
class probabilities weighted by its soft mask; the label is the argmax.

Shapes use ``Q`` proposals, ``C`` classes, ``D`` embedding size and allow
leading batch dimensions (``...``) where noted. Every function computes in float32, also
under an enclosing autocast (:func:`model.precision.full_precision`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import torch
import torch.nn.functional as F

from core.params import check_fractions
from model.precision import full_precision

#: Which of the C classes are seen: a ``[C]`` bool vector, in any form :func:`torch.as_tensor` takes.
SeenMask: TypeAlias = torch.Tensor | np.ndarray | Sequence[bool]

#: The one temperature rule: every softmax of CLIP similarities over class names, in training
#: (finetuning, mask prompts, text prompts, the Mask-Adapter) and at inference, in both families (masked
#: crops, one pass), multiplies the cosines by 100. OVSeg and zsseg.baseline fix 100 (``get_sim_logits``);
#: Mask-Adapter takes CLIP's own scale capped at 100, which is 100 for every pretrained CLIP. The demo's
#: tiny CLIP learns ~14: at that scale the proposer would weigh ~7x more in the ensembles than the
#: papers' exponents imply, and a prompt cross-entropy could not saturate. Only CLIP's own image-caption
#: training (pretraining, ``base_clip_longer``) learns its scale, and mining's pair filter keeps it (its
#: ``min_softmax`` is a threshold at that scale, not a classifier).
CLIP_LOGIT_SCALE = 100.0


def proposer_class_probs(pred_logits: torch.Tensor) -> torch.Tensor:
    """``[..., Q, C+1]`` logits (last = no object) → ``[..., Q, C]`` probabilities.

    Softmax over all C+1 entries, then the no-object column is dropped, so a row
    sums to ``1 - p(no object)``: a proposal the model considers empty has small
    probabilities for every class and weighs little in the semantic map.
    """
    if pred_logits.ndim < 2 or pred_logits.shape[-1] < 2:
        raise ValueError(f"pred_logits must be [..., Q, C+1] with C >= 1, got {tuple(pred_logits.shape)}")
    return pred_logits.float().softmax(dim=-1)[..., :-1]


@full_precision
def clip_class_probs(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: float | torch.Tensor = CLIP_LOGIT_SCALE,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """CLIP's class distribution per crop: ``softmax(scale · cos(image, text))``.

    ``image_emb`` is ``[Q, D]``, ``text_emb`` ``[C, D]`` (both re-normalised here,
    so unnormalised inputs are fine); ``logit_scale`` is the multiplier itself
    (e.g. ``model.logit_scale.exp()``), not its logarithm. Rows where ``valid``
    (``[Q]`` bool) is False — empty masks, whose crops carry no information — get
    the uniform distribution ``1/C``, a neutral factor in the geometric ensemble.
    Returns ``[Q, C]`` float32.
    """
    if image_emb.ndim != 2 or text_emb.ndim != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(
            "image_emb [Q, D] and text_emb [C, D] must share D, "
            f"got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
        )
    img = F.normalize(image_emb.float(), dim=-1)
    txt = F.normalize(text_emb.float().to(img.device), dim=-1)
    probs = (torch.as_tensor(logit_scale, dtype=torch.float32, device=img.device) * img @ txt.T).softmax(dim=-1)
    if valid is not None:
        valid = valid.to(device=probs.device, dtype=torch.bool)
        if valid.shape != probs.shape[:1]:
            raise ValueError(f"valid must be [Q]={probs.shape[0]}, got {tuple(valid.shape)}")
        probs = torch.where(valid[:, None], probs, torch.full_like(probs, 1.0 / probs.shape[1]))
    return probs


def ensemble_exponents(
    num_classes: int,
    lam: float,
    seen: SeenMask | None = None,
    lam_seen: float | None = None,
    lam_unseen: float | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """The CLIP exponent of each class, ``[C]`` float32.

    ``lam`` for every class, except that with a ``seen`` mask (``[C]`` bool),
    seen classes take ``lam_seen`` and unseen ones ``lam_unseen`` when those are
    given. (The reference OVSeg weights seen classes with ``1 - λ`` on CLIP, i.e.
    ``lam_seen = 1 - lam``.)
    """
    check_fractions((("lam", lam), ("lam_seen", lam_seen), ("lam_unseen", lam_unseen)))
    exponents = torch.full((num_classes,), float(lam), dtype=torch.float32, device=device)
    if seen is None:
        if lam_seen is not None or lam_unseen is not None:
            raise ValueError("lam_seen/lam_unseen need a seen mask telling which classes are seen")
        return exponents
    seen_t = torch.as_tensor(seen, device=device)
    if seen_t.shape != (num_classes,):
        raise ValueError(f"seen must be a boolean vector of length {num_classes}, got shape {tuple(seen_t.shape)}")
    seen_t = seen_t.bool()
    if lam_seen is not None:
        exponents[seen_t] = float(lam_seen)
    if lam_unseen is not None:
        exponents[~seen_t] = float(lam_unseen)
    return exponents


def zsseg_exponents(lam: float) -> tuple[float, float]:
    """zsseg.baseline's ensemble as CLIP exponents ``(lam_seen, lam_unseen)`` for :func:`ensemble_exponents`.

    zsseg weights seen classes ``p_prop^λ · p_clip^(1−λ)`` (the proposer was trained on them) and
    unseen classes ``p_prop^(1−λ) · p_clip^λ``, so CLIP's exponent is ``1 − λ`` for seen and ``λ``
    for unseen classes (λ = 0.8 on COCO-Stuff).
    """
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"zsseg lam must lie in [0, 1], got {lam}")
    return 1.0 - float(lam), float(lam)


@full_precision
def ensemble(
    p_prop: torch.Tensor,
    p_clip: torch.Tensor,
    lam: float,
    seen: SeenMask | None = None,
    lam_seen: float | None = None,
    lam_unseen: float | None = None,
) -> torch.Tensor:
    """Geometric ensemble ``p_prop^(1-λ_c) · p_clip^(λ_c)``, ``[..., Q, C]``.

    ``λ_c`` comes from :func:`ensemble_exponents` (λ is the CLIP weight). The
    result is not renormalised (as in the reference): each proposal's scale,
    set by the proposer's objectness, is kept for the semantic map. A class
    whose exponent is exactly 0 (1) gets exactly the proposer's (CLIP's) value.
    """
    if p_prop.shape != p_clip.shape:
        raise ValueError(f"p_prop {tuple(p_prop.shape)} and p_clip {tuple(p_clip.shape)} must have the same shape")
    p_prop = p_prop.float()
    p_clip = p_clip.float().to(p_prop.device)
    lam_c = ensemble_exponents(p_prop.shape[-1], lam, seen, lam_seen, lam_unseen, device=p_prop.device)
    # pow(x, 0) == 1 and pow(x, 1) == x exactly, so the λ ∈ {0, 1} cases reduce to one branch.
    return torch.pow(p_prop, 1.0 - lam_c) * torch.pow(p_clip, lam_c)


@full_precision
def adapter_ensemble(
    p_prop: torch.Tensor,
    p_out: torch.Tensor,
    alpha: float,
    beta: float,
    seen: SeenMask | None = None,
) -> torch.Tensor:
    """Mask-Adapter's (FC-CLIP's) ensemble, ``[..., Q, C]``.

    ``p_prop`` are the proposer's class probabilities with "no object" dropped (rows sum
    to the objectness ``s = 1 − p_void``); ``p_in = p_prop / s`` renormalises them over the
    C classes. Seen classes take ``p_in^(1−α) · p_out^α``, unseen ones ``p_in^(1−β) · p_out^β``
    (every class is unseen without a ``seen`` mask); the products are renormalised over the
    classes and scaled by ``s``. ``α = β = 1`` keeps only ``p_out`` (scaled by ``s``).
    """
    if p_prop.shape != p_out.shape:
        raise ValueError(f"p_prop {tuple(p_prop.shape)} and p_out {tuple(p_out.shape)} must have the same shape")
    p_prop = p_prop.float()
    p_out = p_out.float().to(p_prop.device)
    num_classes = p_prop.shape[-1]
    if seen is None:
        exponents = ensemble_exponents(num_classes, beta, device=p_prop.device)
    else:
        exponents = ensemble_exponents(num_classes, beta, seen, alpha, beta, device=p_prop.device)
    objectness = p_prop.sum(-1, keepdim=True)
    p_in = p_prop / objectness.clamp_min(1e-12)
    logits = (1.0 - exponents) * p_in.clamp_min(1e-12).log() + exponents * p_out.clamp_min(1e-12).log()
    return logits.softmax(-1) * objectness


@full_precision
def semantic_map(class_probs: torch.Tensor, mask_probs: torch.Tensor) -> torch.Tensor:
    """``Σ_q p(c|q) · mask_q``: ``[..., Q, C]`` × ``[..., Q, H, W]`` → ``[..., C, H, W]``."""
    if class_probs.shape[:-1] != mask_probs.shape[:-2]:
        raise ValueError(
            f"class_probs {tuple(class_probs.shape)} and mask_probs {tuple(mask_probs.shape)} disagree on [..., Q]"
        )
    return torch.einsum("...qc,...qhw->...chw", class_probs.float(), mask_probs.float().to(class_probs.device))


@full_precision
def scores_to_labels(scores: torch.Tensor, size: tuple[int, int] | None = None, *, no_label: int = -1) -> torch.Tensor:
    """Argmax of a ``[..., C, h, w]`` score map → int64 labels ``[..., H, W]``.

    When ``size`` (H, W) differs from (h, w), the *score map* is resized
    bilinearly (``align_corners=False``) before the argmax, which gives smoother
    boundaries than resizing labels. Pixels whose scores are all ≤ 0 carry no
    evidence (no proposal covers them) and get ``no_label``; ties go to the
    smaller class index.
    """
    if scores.ndim < 3:
        raise ValueError(f"scores must be [..., C, h, w], got {tuple(scores.shape)}")
    lead, (c, h, w) = scores.shape[:-3], scores.shape[-3:]
    scores = scores.float()
    if size is not None and tuple(size) != (h, w):
        flat = scores.reshape(-1, c, h, w)
        flat = F.interpolate(flat, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)
        scores = flat.reshape(*lead, c, *flat.shape[-2:])
    best, labels = scores.max(dim=-3)
    return torch.where(best > 0, labels, torch.full_like(labels, no_label))


@full_precision
def predict_labels(
    class_probs: torch.Tensor,
    mask_probs: torch.Tensor,
    size: tuple[int, int] | None = None,
    *,
    max_elements: int = 1 << 25,
) -> torch.Tensor:
    """Semantic map then argmax: ``[..., Q, C]``, ``[..., Q, h, w]`` → int64 ``[..., H, W]``.

    See :func:`scores_to_labels` for the resizing (bilinear on scores) and the
    ``-1`` label of pixels without evidence. Without resizing, the score map is
    built in bands of rows holding at most ``max_elements`` scores (a full map of
    847 classes on a 512×683 image would take 1.2 GB); the result is the same.
    """
    h, w = mask_probs.shape[-2:]
    if size is None or tuple(size) == (h, w):
        per_row = max(1, class_probs.shape[-1] * w * math.prod(mask_probs.shape[:-3]))
        rows = max(1, max_elements // per_row)
        if rows < h:
            bands = [
                scores_to_labels(semantic_map(class_probs, mask_probs[..., top : top + rows, :]))
                for top in range(0, h, rows)
            ]
            return torch.cat(bands, dim=-2)
    return scores_to_labels(semantic_map(class_probs, mask_probs), size)


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of integer label maps ``[..., h, w]`` → ``[..., H, W]``."""
    h, w = labels.shape[-2:]
    if (h, w) == tuple(size):
        return labels
    flat = labels.reshape(-1, 1, h, w).float()
    out = F.interpolate(flat, size=tuple(int(s) for s in size), mode="nearest-exact")
    return out.round().to(labels.dtype).reshape(*labels.shape[:-2], *out.shape[-2:])
