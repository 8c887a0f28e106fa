"""Which region each noun of an image names: the CLIP similarity matrix → best regions and their scores.

For an image with nouns ``n`` and usable regions ``r``, ``S[n, r]`` is the
cosine similarity of noun ``n``'s text embedding and region ``r``'s masked-crop
embedding. For every noun:

* ``region``: ``argmax_r S[n, r]`` (the lowest region index among ties);
* ``similarity``: ``S[n, region]``;
* ``softmax``: the noun's probability among the image's nouns for that region,
  ``softmax_n'(scale · S[n', region])[n]``, with CLIP's logit scale as the
  inverse temperature. Low when another noun of the image fits the region
  better: the region is probably not this noun's;
* ``margin``: ``S[n, region] − max_{r ≠ region} S[n, r]``, how clearly the
  region beats the noun's runner-up region; NaN when there is one region.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.precision import full_precision
from pipeline.mining.config import MiningConfig


@dataclass(frozen=True)
class RegionMatch:
    """Per noun (float32/int64 ``[N]`` tensors): best region, similarity, softmax and margin."""

    region: torch.Tensor
    similarity: torch.Tensor
    softmax: torch.Tensor
    margin: torch.Tensor


@full_precision
def similarity_matrix(noun_embeddings: torch.Tensor, region_embeddings: torch.Tensor) -> torch.Tensor:
    """``S [nouns × regions]``: float32 dot products of the (L2-normalised) embeddings ``[N, D]`` and ``[R, D]``."""
    return noun_embeddings.float() @ region_embeddings.float().to(noun_embeddings.device).T


@full_precision
def match_nouns_to_regions(similarity: torch.Tensor, logit_scale: float) -> RegionMatch:
    """Best region of each noun from the ``[nouns × regions]`` cosine matrix (module docstring)."""
    if similarity.dim() != 2 or similarity.shape[0] < 1 or similarity.shape[1] < 1:
        raise ValueError(f"similarity must be [nouns, regions] with both ≥ 1, got {tuple(similarity.shape)}")
    if not logit_scale > 0:
        raise ValueError(f"logit_scale must be positive, got {logit_scale!r}")
    similarity = similarity.float()
    # argmax returns the first maximal index, so ties go to the lowest region index.
    region = similarity.argmax(dim=1)
    nouns = torch.arange(similarity.shape[0], device=similarity.device)
    best = similarity[nouns, region]
    probabilities = torch.softmax(logit_scale * similarity, dim=0)
    softmax = probabilities[nouns, region]
    if similarity.shape[1] > 1:
        others = similarity.clone()
        others[nouns, region] = float("-inf")
        margin = best - others.max(dim=1).values
    else:
        margin = torch.full_like(best, float("nan"))
    return RegionMatch(region=region, similarity=best, softmax=softmax, margin=margin)


def pair_filter(match: RegionMatch, settings: MiningConfig) -> dict[str, torch.Tensor]:
    """Bool ``[N]`` masks of the nouns each filter drops, by reason (only the filters that are set).

    Reasons: ``similarity`` (below ``min_similarity``), ``softmax`` (below
    ``min_softmax``), ``margin`` (below ``min_margin``, or no runner-up region).
    A noun becomes a pair when no mask drops it.
    """
    dropped: dict[str, torch.Tensor] = {}
    if settings.min_similarity is not None:
        dropped["similarity"] = match.similarity < settings.min_similarity
    if settings.min_softmax is not None:
        dropped["softmax"] = match.softmax < settings.min_softmax
    if settings.min_margin is not None:
        dropped["margin"] = torch.isnan(match.margin) | (match.margin < settings.min_margin)
    return dropped


def kept_nouns(match: RegionMatch, settings: MiningConfig) -> torch.Tensor:
    """Bool ``[N]``: the nouns that pass every filter of :func:`pair_filter`."""
    keep = torch.ones_like(match.region, dtype=torch.bool)
    for dropped in pair_filter(match, settings).values():
        keep &= ~dropped
    return keep
