"""Small building blocks shared by the proposer's parts: norms, conv units, MLPs, positions."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn


def make_norm(kind: str, channels: int, gn_groups: int = 8) -> nn.Module:
    """``bn`` → BatchNorm2d, ``gn`` → GroupNorm(``gn_groups``)."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(gn_groups, channels)
    raise ValueError(f"unknown norm '{kind}' (expected bn or gn)")


class ConvNormReLU(nn.Sequential):
    """Conv (no bias) → norm → ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, norm: str, gn_groups: int = 8):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
            make_norm(norm, cout, gn_groups),
            nn.ReLU(inplace=True),
        )


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (DETR's MLP)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def sine_positions(height: int, width: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """DETR's normalised 2-D sine positional encoding, ``[height*width, dim]`` in row-major order.

    Half the channels encode y, half x; each half alternates sin/cos over
    geometric frequencies with temperature 10000. ``dim`` must be divisible by 4.
    """
    if dim % 4:
        raise ValueError(f"positional encoding size {dim} must be divisible by 4")
    half = dim // 2
    eps, scale = 1e-6, 2 * math.pi
    y = (torch.arange(1, height + 1, device=device, dtype=torch.float32) / (height + eps)) * scale
    x = (torch.arange(1, width + 1, device=device, dtype=torch.float32) / (width + eps)) * scale
    steps = torch.arange(half, device=device, dtype=torch.float32)
    freqs = 10000 ** (2 * torch.div(steps, 2, rounding_mode="floor") / half)
    pos_y = y[:, None] / freqs  # [H, half]
    pos_x = x[:, None] / freqs  # [W, half]
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
    grid = torch.cat(
        (pos_y[:, None, :].expand(height, width, half), pos_x[None, :, :].expand(height, width, half)), dim=2
    )
    return grid.reshape(height * width, dim).to(dtype)
