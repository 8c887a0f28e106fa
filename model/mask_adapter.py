"""The Mask-Adapter (Li et al., 2024): semantic activation maps that pool CLIP's dense features per mask.

For each mask, the adapter reads CLIP's projected dense map plus an embedding of the
mask and predicts ``K`` activation maps over the grid. Each map, normalised as
``σ(A) / Σσ(A)`` over positions, pools the frozen CLIP (:meth:`DenseClip.pool`); the
CLIP head embeds each pooled vector, and the mask's embedding is the mean of the K.

Architecture (the paper's, widths are settings):

* mask branch: the mask resized (bilinear) to 4× the grid, two 3×3 stride-2 convs
  (``1 → c/4 → c`` channels, each with LayerNorm2d and GELU), a 1×1 conv to the CLIP's
  embedding size, **added** to the projected dense map;
* trunk: a 1×1 conv to ``hidden`` channels, ``blocks`` ConvNeXt blocks (7×7 depthwise,
  LayerNorm, 4× MLP with GELU, layer scale 1e-6), LayerNorm, a 1×1 conv to ``K`` maps;
* a learned void embedding, scored as one more class during training.

Saved as a folder: ``mask_adapter.json`` (the config, the CLIP it was trained on and that
CLIP's fingerprint) and ``mask_adapter.safetensors``. When the adapter reads a CLIP of its
own (the paper's ConvNeXt, not the pipeline's), that CLIP is saved inside, in ``clip/``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from core.io import atomic_dir, dumps_json, read_json
from model.clip import ClipBundle, load_clip_folder, save_clip_folder
from model.dense_clip import POOLINGS, DenseClip, DenseImage

CONFIG_FILE = "mask_adapter.json"
OWN_CLIP_DIR = "clip"
WEIGHTS_FILE = "mask_adapter.safetensors"
FORMAT = "ovseg.mask_adapter/1"


@dataclass(frozen=True)
class MaskAdapterConfig:
    """``clip_dim``: the CLIP's embedding size; ``num_maps``: K; ``hidden``: the trunk's width;
    ``blocks``: ConvNeXt blocks; ``mask_channels``: the mask branch's width (c);
    ``pooling``/``attention_depth``: how the maps pool the CLIP (see :class:`DenseClip`);
    ``mask_prior``: the initial γ of the mask prior (0: the paper's adapter, see :class:`MaskAdapter`)."""

    clip_dim: int
    num_maps: int = 16
    hidden: int = 768
    blocks: int = 3
    mask_channels: int = 16
    pooling: str = "attention"
    attention_depth: int | None = None
    mask_prior: float = 0.0

    def __post_init__(self) -> None:
        for name in ("clip_dim", "num_maps", "hidden", "blocks"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"mask adapter: {name} must be >= 1, got {getattr(self, name)}")
        if self.mask_channels < 4 or self.mask_channels % 4:
            raise ValueError(f"mask adapter: mask_channels must be a positive multiple of 4, got {self.mask_channels}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"mask adapter: pooling must be one of {POOLINGS}, got {self.pooling!r}")


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a ``[B, C, H, W]`` map."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """7×7 depthwise conv, LayerNorm, 4× MLP (GELU), layer scale, residual."""

    def __init__(self, channels: int, layer_scale: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.fc1 = nn.Linear(channels, 4 * channels)
        self.fc2 = nn.Linear(4 * channels, channels)
        self.gamma = nn.Parameter(torch.full((channels,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class MaskAdapter(nn.Module):
    """Masks and a dense CLIP map → K activation maps per mask, and the masks' embeddings."""

    def __init__(self, config: MaskAdapterConfig):
        super().__init__()
        self.config = config
        c = config.mask_channels
        self.mask_branch = nn.Sequential(
            nn.Conv2d(1, c // 4, 3, stride=2, padding=1),
            LayerNorm2d(c // 4),
            nn.GELU(),
            nn.Conv2d(c // 4, c, 3, stride=2, padding=1),
            LayerNorm2d(c),
            nn.GELU(),
            nn.Conv2d(c, config.clip_dim, 1),
        )
        self.fuse = nn.Conv2d(config.clip_dim, config.hidden, 1)
        self.trunk = nn.Sequential(*(ConvNeXtBlock(config.hidden) for _ in range(config.blocks)))
        self.norm = nn.LayerNorm(config.hidden, eps=1e-6)
        self.final = nn.Conv2d(config.hidden, config.num_maps, 1)
        self.void = nn.Parameter(torch.randn(config.clip_dim) * config.clip_dim**-0.5)
        self.mask_prior = nn.Parameter(torch.tensor(float(config.mask_prior)))

    def dense_clip(self, clip_model: nn.Module) -> DenseClip:
        """The CLIP's image tower, pooled the way this adapter was trained to pool it."""
        return DenseClip(clip_model, pooling=self.config.pooling, attention_depth=self.config.attention_depth)

    def maps(self, projected: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Activation logits ``[B, M, K, h, w]`` from ``projected [B, D, h, w]`` and masks ``[B, M, H, W]`` (0..1)."""
        b, m = masks.shape[:2]
        h, w = projected.shape[-2:]
        flat = F.interpolate(
            masks.reshape(b * m, 1, *masks.shape[-2:]).float(),
            size=(4 * h, 4 * w),
            mode="bilinear",
            align_corners=False,
        )
        x = self.mask_branch(flat.to(projected.dtype)) + projected.repeat_interleave(m, dim=0)
        x = self.trunk(self.fuse(x))
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        # The mask prior: +γ inside the mask, −γ outside (the share of each cell covered, rescaled).
        inside = F.interpolate(flat, size=(h, w), mode="area").to(x.dtype)
        logits = self.final(x) + self.mask_prior * (2 * inside - 1)
        return logits.reshape(b, m, self.config.num_maps, h, w)

    def embed(
        self, dense_clip: DenseClip, dense: DenseImage, masks: torch.Tensor, projected: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The masks' embeddings ``[B, M, D]`` (not normalised): the mean of their K pooled embeddings."""
        if projected is None:
            projected = dense_clip.projected(dense)
        logits = self.maps(projected, masks)
        b, m, k = logits.shape[:3]
        weights = F.logsigmoid(logits.flatten(3)).softmax(-1)  # σ(A) / Σσ(A) over positions
        pooled = dense_clip.pool(dense, weights.reshape(b, m * k, *logits.shape[-2:]))
        return pooled.reshape(b, m, k, -1).mean(dim=2)


def clip_fingerprint(clip_model: nn.Module) -> str:
    """A short hash of a CLIP's image-tower weights: an adapter fits only the CLIP it was trained on."""
    digest = hashlib.sha256()
    for name, tensor in sorted(getattr(clip_model, "visual", clip_model).state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_mask_adapter(
    adapter: MaskAdapter,
    folder: str | os.PathLike,
    *,
    clip_model: nn.Module,
    own_clip: ClipBundle | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the adapter folder atomically (a previous one is replaced whole); ``own_clip`` goes into ``clip/``."""
    folder = Path(folder)
    record = {
        "format": FORMAT,
        "config": asdict(adapter.config),
        "clip_fingerprint": clip_fingerprint(clip_model),
        **(extra or {}),
    }
    state = {name: t.detach().cpu().contiguous() for name, t in adapter.state_dict().items()}
    with atomic_dir(folder) as tmp:
        (tmp / CONFIG_FILE).write_text(dumps_json(record), encoding="utf-8")
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        if own_clip is not None:
            save_clip_folder(own_clip, tmp / OWN_CLIP_DIR)
    return folder


def adapter_clip_folder(folder: str | os.PathLike) -> Path:
    """The CLIP folder an adapter folder reads: its own ``clip/`` if it has one, else the recorded path."""
    folder = Path(folder)
    own = folder / OWN_CLIP_DIR
    if own.is_dir():
        return own
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: not found (is {folder} a mask adapter folder?)")
    recorded = read_json(config_path).get("clip")
    if not recorded:
        raise ValueError(f"{config_path}: records no CLIP folder ('clip')")
    return Path(recorded)


def load_mask_adapter(
    folder: str | os.PathLike, clip_model: nn.Module, device: torch.device | str = "cpu"
) -> MaskAdapter:
    """Load an adapter folder for ``clip_model``; ``ValueError`` when it was trained on another CLIP."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (is {folder} a mask adapter folder?)")
    record = read_json(config_path)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{config_path}: not a mask adapter config (format {FORMAT!r} expected)")
    try:
        config = MaskAdapterConfig(**record["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{config_path}: {exc}") from None
    if record.get("clip_fingerprint") != clip_fingerprint(clip_model):
        raise ValueError(f"{folder}: this adapter was trained on another CLIP (image-tower fingerprint differs)")
    adapter = MaskAdapter(config)
    try:
        adapter.load_state_dict(load_file(str(weights_path)))
    except RuntimeError as exc:
        raise ValueError(f"{weights_path}: weights do not fit the config: {exc}") from None
    return adapter.to(device).eval()


def load_adapter_and_clip(
    folder: str | os.PathLike, clip: ClipBundle, device: torch.device | str
) -> tuple[MaskAdapter, ClipBundle, ClipBundle | None]:
    """``(adapter, the CLIP it classifies with, the CLIP the proposer needs or None)``.

    An adapter with a CLIP of its own (``clip/`` in its folder) classifies with it, and
    ``clip`` (the pipeline's) only embeds the class names for the proposer; otherwise
    ``clip`` must be the CLIP the adapter was trained on.
    """
    own = Path(folder) / OWN_CLIP_DIR
    if own.is_dir():
        own_clip = load_clip_folder(own, device)
        return load_mask_adapter(folder, own_clip.model, device), own_clip, clip
    return load_mask_adapter(folder, clip.model, device), clip, None
