"""The MaskFormer-style proposal network, assembled from its config."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import build_backbone
from .config import ProposerConfig
from .heads import ClassHead, MaskHead
from .pixel_decoder import FPNPixelDecoder
from .transformer import QueryDecoder
from .vocabulary import Vocabulary

MASK_STRIDE = 4  # pred_masks are at 1/4 of the (padded) input resolution


class MaskProposer(nn.Module):
    """Backbone → FPN pixel decoder (mask embeddings, stride 4) + query decoder → heads.

    ``forward(images, text_embeddings)`` takes images ``[B,3,H,W]`` (float in 0..1,
    or uint8 0..255) and L2-normalisable text embeddings ``[C, text_dim]`` of the
    class names to score, and returns

    - ``pred_logits [B,Q,C+1]``: scaled cosine with each class, last column "no object";
    - ``pred_masks [B,Q,ceil(H/4),ceil(W/4)]``: mask logits at stride 4;
    - ``aux_outputs``: the same two keys for every decoder layer but the last.

    The model normalises with the config's mean/std and zero-pads (after
    normalisation) to a multiple of ``size_divisibility``; the masks are cropped
    back to the input's extent. ``vocabulary`` holds the training classes when known
    (set by the trainer, stored by ``save_proposer``) so proposing needs no CLIP.
    """

    pixel_mean: torch.Tensor  # buffers, registered in __init__
    pixel_std: torch.Tensor

    def __init__(self, config: ProposerConfig, backbone_weights: str | os.PathLike | None = None):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone, backbone_weights)
        self.pixel_decoder = FPNPixelDecoder(self.backbone.out_channels, config.pixel_decoder)
        self.decoder = QueryDecoder(self.backbone.out_channels[config.decoder.in_feature], config.decoder)
        self.class_head = ClassHead(config.decoder.hidden_dim, config.text_dim, config.heads)
        self.mask_head = MaskHead(config.decoder.hidden_dim, config.pixel_decoder.mask_dim, config.heads)
        self.register_buffer("pixel_mean", torch.tensor(config.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.pixel_std).view(1, 3, 1, 1), persistent=False)
        self.vocabulary: Vocabulary | None = None

    @property
    def num_queries(self) -> int:
        return self.config.decoder.num_queries

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Validate, scale to 0..1, normalise and zero-pad ``images`` to the size divisibility."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {list(images.shape)}")
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        elif not images.is_floating_point():
            raise ValueError(f"images must be float in 0..1 or uint8, got {images.dtype}")
        x = (images.to(self.pixel_mean.dtype) - self.pixel_mean) / self.pixel_std
        div = self.config.size_divisibility
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % div, (-width) % div
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return x

    def check_text(self, text_embeddings: torch.Tensor) -> None:
        if text_embeddings.ndim != 2 or text_embeddings.shape[0] < 1:
            raise ValueError(f"text embeddings must be [C, D] with C >= 1, got {list(text_embeddings.shape)}")
        if text_embeddings.shape[1] != self.config.text_dim:
            raise ValueError(
                f"text embeddings have D={text_embeddings.shape[1]} but proposer config "
                f"'{self.config.name}' has text_dim={self.config.text_dim}"
            )

    def forward(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> dict:
        self.check_text(text_embeddings)
        height, width = images.shape[-2:]
        features = self.backbone(self.preprocess(images))
        pixel_embeddings = self.pixel_decoder(features)
        out_h, out_w = -(-height // MASK_STRIDE), -(-width // MASK_STRIDE)
        pixel_embeddings = pixel_embeddings[..., :out_h, :out_w]
        layers = self.decoder(features[self.config.decoder.in_feature])
        text = text_embeddings.to(layers.device)
        predictions = [
            {"pred_logits": self.class_head(q, text), "pred_masks": self.mask_head(q, pixel_embeddings)} for q in layers
        ]
        return {**predictions[-1], "aux_outputs": predictions[:-1]}


def build_proposer(config: ProposerConfig, backbone_weights: str | os.PathLike | None = None) -> MaskProposer:
    """A freshly initialised proposer (seed torch beforehand for reproducible weights)."""
    return MaskProposer(config, backbone_weights)
