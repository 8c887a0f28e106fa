"""Batched image augmentation on tensors (one ``grid_sample`` call per batch)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_resized_crops(
    images: torch.Tensor,
    out_size: int,
    scale: tuple[float, float],
    generator: torch.Generator,
    *,
    flip: bool = True,
    masks: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Random square crops covering an area fraction in ``scale``, resized to ``out_size``.

    ``images`` is ``[B,C,H,W]`` float. With ``flip`` each crop is mirrored with
    probability ½. ``masks`` (``[B,H,W]`` bool), when given, get the same crops
    (nearest sampling) and ``(images, masks)`` is returned. The random draws come
    from ``generator`` alone.
    """
    b = images.shape[0]
    side = torch.empty(b).uniform_(scale[0], scale[1], generator=generator).sqrt()  # fraction of the side
    cx = (1 - side) * torch.rand(b, generator=generator) + side / 2
    cy = (1 - side) * torch.rand(b, generator=generator) + side / 2
    mirror = torch.rand(b, generator=generator) < 0.5
    sign = torch.where(mirror & flip, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = side * sign
    theta[:, 1, 1] = side
    theta[:, 0, 2] = cx * 2 - 1
    theta[:, 1, 2] = cy * 2 - 1
    grid = F.affine_grid(theta.to(images.device), [b, 1, out_size, out_size], align_corners=False)
    out = F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    if masks is None:
        return out
    warped = F.grid_sample(masks[:, None].float(), grid, mode="nearest", padding_mode="border", align_corners=False)
    return out, warped[:, 0] > 0.5
