"""CLIP's image tower run once over a whole image, and masks pooled from it.

Mask-Adapter's road (Li et al., 2024): instead of one CLIP pass per masked crop, the
image tower runs once at the image's resolution, and every mask is classified from
what that pass computed. :class:`DenseClip` gives

* :meth:`DenseClip.encode` — one pass over a batch of images, kept as a :class:`DenseImage`;
* :meth:`DenseClip.head` — what CLIP applies to a pooled pre-head vector to reach the
  embedding space; :meth:`DenseClip.projected` applies it at every position (the
  Mask-Adapter's input);
* :meth:`DenseClip.pool` — one embedding per weight map ``[B, M, h, w]`` over the grid.

Two tower families:

* open_clip's ``VisionTransformer`` (the demo CLIP, ViT-B/16). The pre-head map is
  the last block's patch tokens (before ``ln_post``); the head is ``ln_post`` and
  ``proj``. Positional embeddings are interpolated (bicubic) to the image's patch grid.
  Two poolings:

  - ``mean``: the weighted mean of the map, then the head. A ViT's last patch
    tokens feed no loss in pretraining, and this pooling is weak.
  - ``attention``: one extra query token per map, a copy of the class token, enters
    the last ``attention_depth`` blocks. It attends to itself and to the patch tokens,
    with ``log(N · w / Σw)`` added to its attention logits (N patches), so a binary mask
    restricts it to the mask's patches, a soft map weights them, and a map covering the
    whole image gives the image embedding. The image's own tokens never
    see the queries, so they are computed once and every query of every mask reuses
    them. The query's output goes through the head.

* open_clip's timm ConvNeXt towers (``convnext_large_d_320``, the paper's CLIP). The
  pre-head map is the trunk after its last stage (``norm_pre``); the head is the trunk
  head's norm and the tower's projection. Average-pooling the whole map and applying
  the head reproduces ``encode_image``, because the trunk's own pooling is an average.
  Only ``mean`` pooling applies.

Masks reach the grid as weights: a ``[M, H, W]`` mask is area-resized to ``[M, h, w]``
(:func:`mask_weights`, the share of each cell it covers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import nn

if TYPE_CHECKING:
    from open_clip.timm_model import TimmModel

POOLINGS = ("auto", "mean", "attention")


@dataclass
class DenseImage:
    """One tower pass over ``B`` images.

    ``features``: the pre-head map ``[B, C, h, w]``. ``states`` (ViT only): the token
    sequences ``[B, 1 + h·w, width]`` entering each of the blocks the attention queries
    pass through, in order; empty for mean pooling and ConvNeXt.
    """

    features: torch.Tensor
    states: list[torch.Tensor]

    @property
    def grid(self) -> tuple[int, int]:
        h, w = self.features.shape[-2:]
        return h, w

    def select(self, index: torch.Tensor) -> DenseImage:
        """The images at ``index`` (for a training batch drawn from a cached set)."""
        return DenseImage(self.features[index], [state[index] for state in self.states])


class DenseClip(nn.Module):
    """The image tower of a CLIP (``open_clip.CLIP`` or its ``.visual``) as a dense feature extractor.

    The weights are shared with the CLIP, not copied. ``pooling``: ``attention`` or ``mean``
    (``auto``: attention on a ViT, mean on a ConvNeXt). ``attention_depth``: how many of
    the last blocks the attention queries pass through (``None``: all of them).
    """

    # open_clip ships no type information: its towers' submodules are reached by name
    visual: VisionTransformer | TimmModel

    def __init__(self, clip_model: nn.Module, *, pooling: str = "attention", attention_depth: int | None = None):
        super().__init__()
        visual = getattr(clip_model, "visual", clip_model)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if isinstance(visual, VisionTransformer):
            self.kind = "vit"
            pooling = "attention" if pooling == "auto" else pooling
            if visual.attn_pool is not None or getattr(visual, "final_ln_after_pool", False):
                raise ValueError("dense features need a ViT with plain token pooling (no attentional pooler)")
            self.stride = int(visual.patch_size[0])
            blocks = len(visual.transformer.resblocks)
            depth = blocks if attention_depth is None else int(attention_depth)
            if not 1 <= depth <= blocks:
                raise ValueError(f"attention_depth must lie in 1..{blocks} for this ViT, got {attention_depth}")
        elif hasattr(visual, "trunk") and hasattr(visual.trunk, "stages") and hasattr(visual.trunk, "norm_pre"):
            self.kind = "convnext"
            pooling = "mean" if pooling == "auto" else pooling
            if pooling != "mean":
                raise ValueError("a ConvNeXt tower pools its feature map by weighted mean: set pooling to 'mean'")
            self.stride = 32
            depth = 0
        else:
            raise ValueError(
                f"dense CLIP features support open_clip ViTs and timm ConvNeXt towers, not {type(visual).__name__}"
            )
        self.visual = visual
        self.pooling = pooling
        self.attention_depth = depth if pooling == "attention" else 0

    @property
    def width(self) -> int:
        """Channels of the pre-head map."""
        if self.kind == "vit":
            return int(self.visual.conv1.out_channels)
        return int(self.visual.trunk.num_features)

    @property
    def dtype(self) -> torch.dtype:
        """The input dtype: that of the first layer (the LayerNorms of a low-precision CLIP stay float32)."""
        first = self.visual.conv1 if self.kind == "vit" else self.visual.trunk.stem
        return next(first.parameters()).dtype

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an ``height × width`` image is resized to: the nearest multiples of the stride."""

        def fit(side: int) -> int:
            return max(self.stride, round(side / self.stride) * self.stride)

        return fit(height), fit(width)

    # ------------------------------------------------------------------ the pass
    def encode(self, images: torch.Tensor) -> DenseImage:
        """One pass over normalised images ``[B, 3, H, W]`` (H and W multiples of the stride)."""
        images = images.to(self.dtype)
        if images.shape[-2] % self.stride or images.shape[-1] % self.stride:
            raise ValueError(f"image size {tuple(images.shape[-2:])} is not a multiple of the stride {self.stride}")
        if self.kind == "convnext":
            trunk = self.visual.trunk
            return DenseImage(trunk.norm_pre(trunk.stages(trunk.stem(images))), [])
        visual = self.visual
        x = visual.conv1(images)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1).to(x.dtype)
        x = visual.ln_pre(torch.cat([cls, x], dim=1) + self._positions(h, w).to(x.dtype))
        blocks = visual.transformer.resblocks
        first_query_block = len(blocks) - self.attention_depth
        states = []
        for index, block in enumerate(blocks):
            if index >= first_query_block:
                states.append(x)
            x = self._run_block(block, x)
        features = x[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, h, w)
        return DenseImage(features, states)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Pre-head vectors ``[..., C]`` → embeddings ``[..., D]`` (not normalised, like ``encode_image``)."""
        lead = pooled.shape[:-1]
        x = pooled.reshape(-1, pooled.shape[-1])
        if self.kind == "vit":
            x = self.visual.ln_post(x)
            if self.visual.proj is not None:
                x = x @ self.visual.proj
        else:
            trunk_head = self.visual.trunk.head
            x = trunk_head.drop(trunk_head.norm(x[:, :, None, None]).flatten(1))
            x = self.visual.head(x)
        return x.reshape(*lead, x.shape[-1])

    def projected(self, dense: DenseImage) -> torch.Tensor:
        """The head at every position: ``[B, D, h, w]`` (the Mask-Adapter's input)."""
        features = dense.features
        b, _, h, w = features.shape
        return self.head(features.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)

    # ------------------------------------------------------------------ pooling
    def pool(self, dense: DenseImage, weights: torch.Tensor) -> torch.Tensor:
        """One embedding per map: ``weights [B, M, h, w]`` (≥ 0, any scale) → ``[B, M, D]``.

        A map with no weight anywhere pools the whole grid uniformly.
        """
        if weights.shape[0] != dense.features.shape[0] or tuple(weights.shape[-2:]) != dense.grid:
            raise ValueError(f"weights {tuple(weights.shape)} do not fit the dense map {tuple(dense.features.shape)}")
        weights = weights.to(dense.features.dtype).flatten(2)
        total = weights.sum(-1, keepdim=True)
        weights = torch.where(total > 0, weights / total.clamp_min(1e-12), 1.0 / weights.shape[-1])
        if self.pooling == "mean":
            return self.head(torch.bmm(weights, dense.features.flatten(2).transpose(1, 2)))
        return self.head(self._attend(dense, weights))

    def _attend(self, dense: DenseImage, weights: torch.Tensor) -> torch.Tensor:
        """The query tokens through the last blocks; ``weights [B, M, h·w]`` sum to one per map."""
        blocks = self.visual.transformer.resblocks[len(self.visual.transformer.resblocks) - self.attention_depth :]
        # log(N·w): an all-ones map is no bias at all (the query then follows the class token exactly);
        # log 0 = -inf, so patches outside a binary mask are never attended.
        bias = torch.log(weights * weights.shape[-1])
        queries = dense.states[0][:, :1].expand(-1, weights.shape[1], -1)
        for block, state in zip(blocks, dense.states):
            queries = _query_block(block, queries, state[:, 1:], bias)
        return queries

    # ------------------------------------------------------------------ ViT internals
    def _run_block(self, block: ResidualAttentionBlock, x: torch.Tensor) -> torch.Tensor:
        if self.visual.transformer.batch_first:
            return block(x)
        return block(x.transpose(0, 1)).transpose(0, 1)

    def _positions(self, h: int, w: int) -> torch.Tensor:
        """Positional embeddings ``[1 + h·w, width]`` for an ``h × w`` grid (bicubic from the trained grid)."""
        table = self.visual.positional_embedding
        grid_h, grid_w = self.visual.grid_size
        if (h, w) == (grid_h, grid_w):
            return table
        patches = table[1:].float().reshape(1, grid_h, grid_w, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(h, w), mode="bicubic", align_corners=False)
        return torch.cat([table[:1].float(), patches.permute(0, 2, 3, 1).reshape(h * w, -1)]).to(table.dtype)


def _query_block(
    block: ResidualAttentionBlock, queries: torch.Tensor, patches: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """One open_clip ``ResidualAttentionBlock`` for query tokens only.

    ``queries [B, M, w]`` attend to the block's input patch tokens ``patches [B, N, w]``
    (logits plus ``bias [B, M, N]``) and to themselves; the result equals running the
    block on ``[tokens, queries]`` with the matching attention mask, without recomputing
    the tokens.
    """
    attn = block.attn
    width, heads = queries.shape[-1], attn.num_heads
    q_in = block.ln_1(queries)
    q, k_self, v_self = F.linear(q_in, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    k_img, v_img = F.linear(block.ln_1(patches), attn.in_proj_weight[width:], attn.in_proj_bias[width:]).chunk(2, -1)

    def split(x: torch.Tensor) -> torch.Tensor:  # [B, L, w] -> [B, heads, L, w / heads]
        return x.unflatten(-1, (heads, width // heads)).transpose(1, 2)

    q, k_self, v_self, k_img, v_img = map(split, (q, k_self, v_self, k_img, v_img))
    scale = (width // heads) ** -0.5
    logits_img = (q @ k_img.transpose(-1, -2)) * scale + bias[:, None].to(q.dtype)
    logits_self = (q * k_self).sum(-1, keepdim=True) * scale
    attention = torch.cat([logits_img, logits_self], dim=-1).softmax(-1)
    mixed = attention[..., :-1] @ v_img + attention[..., -1:] * v_self
    x = queries + block.ls_1(attn.out_proj(mixed.transpose(1, 2).flatten(2)))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def mask_weights(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[..., H, W]`` masks (bool or 0..1) → ``[..., h, w]``: the share of each cell they cover (area resize)."""
    lead = masks.shape[:-2]
    flat = masks.reshape(-1, 1, *masks.shape[-2:]).float()
    if flat.shape[0] == 0:
        return flat.new_zeros(*lead, *size)
    return F.interpolate(flat, size=tuple(size), mode="area").reshape(*lead, *size)
