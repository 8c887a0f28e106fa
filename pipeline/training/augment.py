"""Batched image augmentation on tensors: one ``grid_sample`` call per batch, with masks or labels warped alike."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict, Unpack

import torch
import torch.nn.functional as F


def warp(x: torch.Tensor, theta: torch.Tensor, size: tuple[int, int], *, mode: str, padding: str) -> torch.Tensor:
    """``x [B,C,H,W]`` resampled on the ``size`` grid of the affine maps ``theta [B,2,3]`` (``[-1, 1]``
    coordinates, ``align_corners=False``), in one ``grid_sample`` call. ``mode``: bilinear or nearest;
    ``padding``: what lies outside the input (zeros or border)."""
    grid = F.affine_grid(theta.to(x.device), [theta.shape[0], 1, *size], align_corners=False)
    return F.grid_sample(x, grid.to(x.dtype), mode=mode, padding_mode=padding, align_corners=False)


class CropOptions(TypedDict, total=False):
    """The options of :func:`resized_crop_maps`, which the croppers pass on (defaults there)."""

    flip: bool
    part_of: tuple[int, int] | None
    ratio: tuple[float, float]


def resized_crop_maps(
    batch: int,
    scale: tuple[float, float],
    generator: torch.Generator,
    *,
    flip: bool = True,
    part_of: tuple[int, int] | None = None,
    ratio: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """The affine maps ``[batch,2,3]`` (:func:`warp`'s ``theta``) of random crops covering an area fraction in
    ``scale``.

    ``ratio``: the crop's width/height drawn log-uniformly in that range (torchvision's and
    detectron2's ``RandomResizedCrop``; a side longer than the image is cut to it); ``(1, 1)``, square
    crops, draws nothing for it, so those crops are the same as before the option existed.
    With ``flip`` each crop is mirrored with probability ½. The random draws come
    from ``generator`` alone; with ``part_of=(start, total)`` the ``batch`` images are rows
    ``start:start+batch`` of a batch of ``total`` split across processes, the draws are made
    for all ``total`` rows and these rows take theirs (:func:`_rows`).
    """
    rows = _rows(batch, part_of)
    b = rows.stop if part_of is None else part_of[1]
    area = torch.empty(b).uniform_(scale[0], scale[1], generator=generator)
    at_x, at_y = torch.rand(b, generator=generator), torch.rand(b, generator=generator)
    mirror = torch.rand(b, generator=generator) < 0.5
    if tuple(ratio) == (1.0, 1.0):
        width = height = area.sqrt()  # fractions of the image's sides
    else:
        aspect = torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator).exp()
        width, height = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    cx = (1 - width) * at_x + width / 2
    cy = (1 - height) * at_y + height / 2
    sign = torch.where(mirror & flip, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = width * sign
    theta[:, 1, 1] = height
    theta[:, 0, 2] = cx * 2 - 1
    theta[:, 1, 2] = cy * 2 - 1
    return theta[rows]


def random_resized_crops(
    images: torch.Tensor,
    out_size: int,
    scale: tuple[float, float],
    generator: torch.Generator,
    **options: Unpack[CropOptions],
) -> torch.Tensor:
    """Random crops of ``images`` (``[B,C,H,W]`` float) resized to ``out_size`` squares: the maps of
    :func:`resized_crop_maps` (``scale``, ``generator`` and ``options``), sampled bilinearly."""
    theta = resized_crop_maps(images.shape[0], scale, generator, **options)
    return warp(images, theta, (out_size, out_size), mode="bilinear", padding="border")


def random_resized_crops_with_masks(
    images: torch.Tensor,
    masks: torch.Tensor,
    out_size: int,
    scale: tuple[float, float],
    generator: torch.Generator,
    **options: Unpack[CropOptions],
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`random_resized_crops` of ``images`` and the same crops of ``masks`` (``[B,H,W]`` bool, nearest
    sampling), as ``(images, masks)``."""
    theta = resized_crop_maps(images.shape[0], scale, generator, **options)
    size = (out_size, out_size)
    out = warp(images, theta, size, mode="bilinear", padding="border")
    return out, warp(masks[:, None].float(), theta, size, mode="nearest", padding="border")[:, 0] > 0.5


def augment_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    *,
    scale_range: tuple[float, float] = (1.0, 1.0),
    hflip: bool = False,
    crop_size: int | None = None,
    fill: Sequence[float] = (0.0, 0.0, 0.0),
    part_of: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random zoom + crop + horizontal flip of a batch: ``crop_size²`` outputs (default: the input size).

    ``images [B,3,H,W]`` (uint8 or float 0..1), ``labels [B,H,W]`` (int, -1 ignore).
    Each image is zoomed by ``s ~ U(scale_range)`` and a ``crop_size`` window is
    placed at random, inside the zoomed image when it is larger than the window and
    around it when it is smaller; images are resampled bilinearly, labels by nearest
    neighbour. Pixels from outside the image get colour ``fill`` (0..1 RGB) and
    label -1. All randomness comes from ``generator``, drawn on the CPU (``part_of``: as in
    :func:`resized_crop_maps`). Returns float images in 0..1 and int64 labels on the input's device.
    """
    if images.ndim != 4 or labels.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"images [B,3,H,W] and labels [B,H,W] disagree: {list(images.shape)}, {list(labels.shape)}")
    batch, _, height, width = images.shape
    rows = _rows(batch, part_of)
    draws = batch if part_of is None else part_of[1]
    out = crop_size or None
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    low, high = scale_range
    scale = low + (high - low) * torch.rand(draws, generator=generator)
    # Window sides in units of the image's sides (x, y).
    side = torch.stack(((out or width) / width / scale, (out or height) / height / scale), dim=1)
    # Window centre in [-1, 1] coordinates: |c| <= |1 - side| keeps window and image nested.
    centre = (torch.rand(draws, 2, generator=generator) * 2 - 1) * (1 - side).abs()
    flip = torch.rand(draws, generator=generator) < 0.5 if hflip else torch.zeros(draws, dtype=torch.bool)
    scale, side, centre, flip = scale[rows], side[rows], centre[rows], flip[rows]
    if out is None and bool((scale == 1).all()) and not bool(flip.any()):
        return x, labels.long()
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = torch.where(flip, -side[:, 0], side[:, 0])
    theta[:, 1, 1] = side[:, 1]
    theta[:, :, 2] = centre
    size = (out or height, out or width)
    mean = torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = warp(x - mean, theta, size, mode="bilinear", padding="zeros") + mean
    shifted = (labels.to(x.device).float() + 1.0)[:, None]  # 0 = ignore, also for out-of-image pixels
    y = warp(shifted, theta, size, mode="nearest", padding="zeros")[:, 0]
    return x.clamp(0, 1), y.round().long() - 1


def _rows(batch: int, part_of: tuple[int, int] | None) -> slice:
    """The rows of the drawn batch that ``batch`` images take: all of them, or ``start:start+batch`` of
    ``part_of=(start, total)`` (so that a batch split across processes sees the draws of the whole batch)."""
    if part_of is None:
        return slice(0, batch)
    start, total = part_of
    if start < 0 or start + batch > total:
        raise ValueError(f"part_of {tuple(part_of)}: rows {start}..{start + batch} do not lie in a batch of {total}")
    return slice(start, start + batch)
