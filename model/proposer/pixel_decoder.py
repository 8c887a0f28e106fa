"""FPN pixel decoder: per-pixel mask embeddings at stride 4 (MaskFormer's BasePixelDecoder)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import LEVELS
from .config import PixelDecoderConfig
from .layers import ConvNormReLU, make_norm


class FPNPixelDecoder(nn.Module):
    """Top-down FPN over ``res2..res5``, then a 3×3 conv to ``mask_dim`` channels at stride 4.

    ``res5`` goes through a 3×3 conv; each finer level adds a 1×1 lateral
    projection to the nearest-upsampled coarser map and is smoothed by a 3×3 conv.
    """

    def __init__(self, in_channels: dict[str, int], config: PixelDecoderConfig):
        super().__init__()
        dim, norm, groups = config.conv_dim, config.norm, config.gn_groups
        self.top = ConvNormReLU(in_channels["res5"], dim, 3, 1, norm, groups)
        self.lateral = nn.ModuleDict()
        self.output = nn.ModuleDict()
        for level in LEVELS[:-1]:
            self.lateral[level] = nn.Sequential(
                nn.Conv2d(in_channels[level], dim, 1, bias=False),
                make_norm(norm, dim, groups),
            )
            self.output[level] = ConvNormReLU(dim, dim, 3, 1, norm, groups)
        self.mask_features = nn.Conv2d(dim, config.mask_dim, 3, padding=1)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        y = self.top(features["res5"])
        for level in reversed(LEVELS[:-1]):
            lateral = self.lateral[level](features[level])
            y = self.output[level](lateral + F.interpolate(y, size=lateral.shape[-2:], mode="nearest"))
        return self.mask_features(y)
