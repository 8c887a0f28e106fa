"""Decoded images and their nouns → pair rows, with the models and no Beam.

Per batch of images: the proposer runs on images of the same size together
(``settings.images_per_batch`` at most), then per image the usable regions
(:func:`pipeline.mining.regions.usable_regions`) are cropped and encoded by CLIP
in one batch, compared with the text embeddings of the image's nouns, and
each noun's best region (:mod:`pipeline.mining.matching`) becomes a
:data:`pipeline.beam.schemas.PAIRS` row unless a filter drops it.

The results depend on the images, their nouns, the models, the settings and
the composition of each proposer batch (batched convolutions round differently
from single ones, ~1e-7). The job fixes the batches: a group's images are
always the same, mined in image-id order, whatever the runner.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from core.rle import encode_rle
from model.crops import mask_boxes, masked_crops
from model.precision import inference_autocast
from model.proposer import propose
from pipeline.mining.accounting import REASON_NO_PAIR, REASON_NO_PROPOSAL, ImageInput, NounEntry
from pipeline.mining.config import MiningConfig
from pipeline.mining.image_io import ImageProblem
from pipeline.mining.matching import RegionMatch, kept_nouns, match_nouns_to_regions, pair_filter, similarity_matrix
from pipeline.mining.models import MiningModels
from pipeline.mining.regions import Regions, usable_regions


@dataclass(frozen=True)
class ImageToMine:
    """A decoded image (``H×W×3 uint8``) with its record and its nouns (sorted by noun)."""

    image: ImageInput
    pixels: np.ndarray
    nouns: tuple[NounEntry, ...]


@dataclass(frozen=True)
class MinedImage:
    """The pair rows of one image (sorted by noun), or the problem that left it without any."""

    image: ImageInput
    pairs: list[dict[str, Any]] = field(default_factory=list)
    problem: ImageProblem | None = None


def proposer_batches(items: Sequence[ImageToMine], batch_size: int) -> Iterator[list[int]]:
    """Indices of ``items`` in proposer batches: same image size, at most ``batch_size``, in item order."""
    by_size: dict[tuple[int, ...], list[int]] = {}
    for index, item in enumerate(items):
        by_size.setdefault(tuple(item.pixels.shape), []).append(index)
    for indices in by_size.values():
        for start in range(0, len(indices), batch_size):
            yield indices[start : start + batch_size]


@torch.no_grad()
def mine_images(models: MiningModels, items: Sequence[ImageToMine], settings: MiningConfig) -> list[MinedImage]:
    """Mine every item (module docstring), under ``settings.precision``'s autocast; results in item order."""
    with inference_autocast(settings.precision, models.device):
        return _mine(models, items, settings)


def _mine(models: MiningModels, items: Sequence[ImageToMine], settings: MiningConfig) -> list[MinedImage]:
    results: list[MinedImage | None] = [None] * len(items)
    device = models.device
    for batch in proposer_batches(items, settings.images_per_batch):
        pixels = torch.stack([torch.from_numpy(items[index].pixels) for index in batch]).to(device)
        images = pixels.permute(0, 3, 1, 2)
        proposals = propose(models.proposer, images)
        for position, index in enumerate(batch):
            regions = usable_regions(proposals.mask_probs[position], proposals.scores[position], settings)
            results[index] = mine_regions(models, items[index], images[position], regions, settings)
    return [result for result in results if result is not None]


def mine_regions(
    models: MiningModels, item: ImageToMine, image: torch.Tensor, regions: Regions, settings: MiningConfig
) -> MinedImage:
    """The pairs of one image (``image``: ``[3, H, W]`` uint8 on the models' device) from its regions."""
    height, width = image.shape[1:]
    if len(regions) == 0:
        return MinedImage(
            item.image,
            problem=ImageProblem(
                REASON_NO_PROPOSAL,
                f"no usable region among the proposals (mask > {settings.mask_threshold}, score ≥ "
                f"{settings.min_proposal_score}, area ≥ {settings.min_area(height, width)} px)",
            ),
        )
    crops = masked_crops(
        image,
        regions.masks,
        size=models.clip.image_size,
        mean=models.clip.mean,
        std=models.clip.std,
        expand_ratio=settings.expand_ratio,
    )
    region_embeddings = models.clip.encode_image(crops.crops, crops.crop_masks)
    noun_embeddings = models.noun_embeddings([entry.noun for entry in item.nouns]).to(region_embeddings.device)
    match = match_nouns_to_regions(similarity_matrix(noun_embeddings, region_embeddings), models.logit_scale)
    keep = kept_nouns(match, settings)
    if not bool(keep.any()):
        counts = ", ".join(f"{reason} {int(mask.sum())}" for reason, mask in pair_filter(match, settings).items())
        return MinedImage(
            item.image,
            problem=ImageProblem(
                REASON_NO_PAIR, f"all {len(item.nouns)} nouns filtered out (below the threshold of: {counts})"
            ),
        )
    return MinedImage(item.image, pairs=pair_rows(item, regions, match, keep))


def pair_rows(item: ImageToMine, regions: Regions, match: RegionMatch, keep: torch.Tensor) -> list[dict[str, Any]]:
    """:data:`pipeline.beam.schemas.PAIRS` rows of the kept nouns, in noun order."""
    masks = regions.masks.cpu()
    boxes = mask_boxes(masks).tolist()
    region_ids = match.region.cpu().tolist()
    similarity = match.similarity.cpu().tolist()
    softmax = match.softmax.cpu().tolist()
    margin = match.margin.cpu().tolist()
    proposal_ids = regions.proposal_ids.cpu().tolist()
    scores = regions.scores.cpu().tolist()
    areas = regions.areas.cpu().tolist()
    height, width = masks.shape[1:]
    rle_of: dict[int, str] = {}
    rows = []
    for noun_index, entry in enumerate(item.nouns):
        if not bool(keep[noun_index]):
            continue
        region = region_ids[noun_index]
        if region not in rle_of:
            rle_of[region] = encode_rle(masks[region].numpy())["counts"]
        x0, y0, x1, y1 = boxes[region]
        rows.append(
            {
                "image_id": item.image.image_id,
                "file_name": item.image.file_name,
                "noun": entry.noun,
                "caption_ids": list(entry.caption_ids),
                "noun_count": entry.count,
                "mask_rle": rle_of[region],
                "height": int(height),
                "width": int(width),
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "area": int(areas[region]),
                "proposal_id": int(proposal_ids[region]),
                "proposal_score": float(scores[region]),
                "similarity": float(similarity[noun_index]),
                "softmax": float(softmax[noun_index]),
                "margin": None if np.isnan(margin[noun_index]) else float(margin[noun_index]),
            }
        )
    return rows
