"""Backbones returning the four feature levels ``res2..res5`` (strides 4, 8, 16, 32)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .config import BackboneConfig
from .layers import ConvNormReLU, make_norm

LEVELS = ("res2", "res3", "res4", "res5")


class ResidualBlock(nn.Module):
    """Two 3×3 convs with an identity shortcut (ResNet's basic block, fixed width)."""

    def __init__(self, channels: int, norm: str, gn_groups: int):
        super().__init__()
        self.conv1 = ConvNormReLU(channels, channels, 3, 1, norm, gn_groups)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = make_norm(norm, channels, gn_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.norm2(self.conv2(self.conv1(x))))


class StagedBackbone(nn.Module):
    """A ``stem`` then four ``stages``; ``forward`` returns each stage's output as ``res2..res5``."""

    stem: nn.Module
    stages: nn.ModuleList
    out_channels: dict[str, int]  # channels of each level

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        features = {}
        for level, stage in zip(LEVELS, self.stages):
            x = stage(x)
            features[level] = x
        return features


class ConvBackbone(StagedBackbone):
    """A small residual conv net: a stride-2 stem, then four stride-2 stages.

    Each stage is a strided 3×3 conv to the stage width followed by
    ``blocks[i]`` residual blocks; stage ``i`` output is ``res{i+2}``.
    """

    def __init__(self, config: BackboneConfig):
        super().__init__()
        norm, groups = config.norm, config.gn_groups
        self.stem = ConvNormReLU(3, config.stem_channels, 3, 2, norm, groups)
        stages = []
        cin = config.stem_channels
        for width, blocks in zip(config.channels, config.blocks):
            layers: list[nn.Module] = [ConvNormReLU(cin, width, 3, 2, norm, groups)]
            layers += [ResidualBlock(width, norm, groups) for _ in range(blocks)]
            stages.append(nn.Sequential(*layers))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.out_channels = dict(zip(LEVELS, config.channels))


class ResNet50Backbone(StagedBackbone):
    """torchvision's ResNet-50 trunk (no classifier), built without downloading weights.

    ``weights`` may name a local torchvision ResNet-50 state dict (``.pth``, read
    with ``weights_only=True``, or ``.safetensors``); its ``fc.*`` entries are ignored.
    """

    def __init__(self, config: BackboneConfig, weights: str | os.PathLike | None = None):
        super().__init__()
        from torchvision.models import resnet50
        from torchvision.ops import FrozenBatchNorm2d

        norm_layer = FrozenBatchNorm2d if config.norm == "frozen_bn" else nn.BatchNorm2d
        net = resnet50(weights=None, norm_layer=norm_layer)
        if weights is not None:
            load_torchvision_weights(net, weights)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.out_channels = dict(zip(LEVELS, (256, 512, 1024, 2048)))


def load_torchvision_weights(net: nn.Module, path: str | os.PathLike) -> None:
    """Load a local torchvision ResNet state dict into ``net``.

    Every trunk tensor must be present and nothing else (the classifier and BN step
    counters excepted), so a wrong file fails loudly instead of half-loading.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: backbone checkpoint not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    # BatchNorm's step counter is absent from some releases and meaningless to FrozenBatchNorm2d.
    skip = ("fc.", "num_batches_tracked")
    state = {k: v for k, v in state.items() if not any(s in k for s in skip)}
    expected = {k for k in net.state_dict() if not any(s in k for s in skip)}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"{path}: not a ResNet-50 state dict (missing {missing[:5]}, unexpected {unexpected[:5]})")
    net.load_state_dict(state, strict=False)


def build_backbone(config: BackboneConfig, weights: str | os.PathLike | None = None) -> StagedBackbone:
    """The backbone named by ``config.type``; ``weights`` only applies to ``resnet50``."""
    if config.type == "conv":
        if weights is not None:
            raise ValueError("backbone weights can only be loaded into the resnet50 backbone")
        return ConvBackbone(config)
    return ResNet50Backbone(config, weights)
