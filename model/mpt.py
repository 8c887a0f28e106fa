"""Mask prompt tuning (MPT) for open_clip's ``VisionTransformer``.

A masked crop shows the region on a flat mean-colour background, which CLIP never
saw in pretraining. MPT (OVSeg, Liang et al. 2023) replaces the tokens of patches
that are entirely background with learnable prompt tokens, one per patch position
and per depth, while CLIP's own weights stay frozen:

* depth 0: right after the patch embedding, before the class token and the
  positional embedding are added (the reference implementation's order);
* depth ``d`` (1 <= d < depth): right after transformer block ``d - 1``.

The class token is never replaced. With an all-foreground mask nothing is replaced
and :func:`encode_image_with_prompts` equals ``clip_model.encode_image`` exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from open_clip.transformer import PatchDropout, VisionTransformer
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.utils.checkpoint import checkpoint

from core.io import atomic_write_bytes

PROMPTS_FILE = "mask_prompts.safetensors"
PROMPTS_FORMAT = "ovseg.mask_prompts/1"
_TENSOR_KEY = "prompts"


class MaskPrompts(nn.Module):
    """Learnable background tokens: one parameter of shape ``(depth, num_patches, width)``.

    ``prompts[0]`` replaces background patch embeddings at the input;
    ``prompts[d]`` replaces background tokens after transformer block ``d - 1``.
    Initialised from N(0, 0.02) like the reference (MAE-style mask token init).
    """

    def __init__(self, depth: int, num_patches: int, width: int, *, generator: torch.Generator | None = None):
        super().__init__()
        for name, value in (("depth", depth), ("num_patches", num_patches), ("width", width)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"MaskPrompts: {name} must be a positive integer, got {value!r}")
        self.prompts = nn.Parameter(torch.empty(depth, num_patches, width))
        nn.init.normal_(self.prompts, mean=0.0, std=0.02, generator=generator)

    @classmethod
    def for_visual(cls, visual: nn.Module, depth: int, *, generator: torch.Generator | None = None) -> MaskPrompts:
        """Prompts sized for ``visual`` (a CLIP's ``.visual`` or the CLIP itself), on its device."""
        vit = _vision_transformer(visual)
        n_blocks = len(vit.transformer.resblocks)
        if not isinstance(depth, int) or not 1 <= depth <= n_blocks + 1:
            raise ValueError(
                f"MaskPrompts: depth must be in 1..{n_blocks + 1} for a {n_blocks}-block ViT, got {depth!r}"
            )
        grid_h, grid_w = vit.grid_size
        prompts = cls(depth, grid_h * grid_w, vit.conv1.out_channels, generator=generator)
        return prompts.to(vit.conv1.weight.device)

    @property
    def depth(self) -> int:
        return self.prompts.shape[0]

    @property
    def num_patches(self) -> int:
        return self.prompts.shape[1]

    @property
    def width(self) -> int:
        return self.prompts.shape[2]

    def check_compatible(self, visual: nn.Module) -> None:
        """Raise ``ValueError`` unless these prompts fit ``visual``'s patch grid, width and depth."""
        vit = _vision_transformer(visual)
        grid_h, grid_w = vit.grid_size
        n_blocks = len(vit.transformer.resblocks)
        expected = (grid_h * grid_w, vit.conv1.out_channels)
        if (self.num_patches, self.width) != expected or self.depth > n_blocks + 1:
            raise ValueError(
                f"mask prompts of shape {tuple(self.prompts.shape)} do not fit a ViT with a "
                f"{grid_h}x{grid_w} patch grid, width {expected[1]} and {n_blocks} blocks"
            )


def _vision_transformer(module: nn.Module) -> VisionTransformer:
    visual = getattr(module, "visual", module)
    if not isinstance(visual, VisionTransformer):
        raise TypeError(
            f"mask prompt tuning needs open_clip's VisionTransformer image tower, got {type(visual).__name__}"
        )
    return visual


def patch_foreground(crop_masks: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """Which patches hold at least one foreground pixel: bool ``[B, grid_h * grid_w]``.

    ``crop_masks`` is ``[B, H, W]`` or ``[B, 1, H, W]`` (bool or 0/1 values). A max-pool
    over the patch cells, so a patch is foreground if any of its pixels is; trailing
    pixels that do not fill a whole patch are dropped, exactly as the strided patch
    convolution drops them.
    """
    if crop_masks.dim() == 4 and crop_masks.shape[1] == 1:
        crop_masks = crop_masks[:, 0]
    if crop_masks.dim() != 3:
        raise ValueError(f"crop masks must be [B, H, W] or [B, 1, H, W], got shape {tuple(crop_masks.shape)}")
    pooled = F.max_pool2d(crop_masks[:, None].float(), kernel_size=patch_size, stride=patch_size)
    return pooled.flatten(1) > 0


def _replace_background(
    x: torch.Tensor, foreground: torch.Tensor, prompt: torch.Tensor, batch_first: bool
) -> torch.Tensor:
    """Swap the background patch tokens of ``x`` (class token first) for ``prompt``.

    ``foreground`` is ``[B, L]``; ``prompt`` is ``[L, D]``.
    """
    if batch_first:  # x: [B, 1 + L, D]
        patches = torch.where(foreground[:, :, None], x[:, 1:], prompt[None])
        return torch.cat([x[:, :1], patches], dim=1)
    # x: [1 + L, B, D]
    patches = torch.where(foreground.t()[:, :, None], x[1:], prompt[:, None])
    return torch.cat([x[:1], patches], dim=0)


def encode_image_with_prompts(
    clip_model: nn.Module, images: torch.Tensor, crop_masks: torch.Tensor, prompts: MaskPrompts
) -> torch.Tensor:
    """Image features ``[B, embed_dim]`` (not normalised, like ``CLIP.encode_image``) with MPT.

    ``images`` are normalised crops ``[B, 3, H, W]`` in the model's input dtype;
    ``crop_masks`` their masks at the same resolution. Mirrors open_clip 3.x
    ``VisionTransformer.forward`` step by step (conv1, reshape, class token,
    positional embedding, patch dropout, ln_pre, blocks in the transformer's
    layout, pooling, projection) with the background replacement inserted.
    """
    visual = _vision_transformer(clip_model)
    prompts.check_compatible(visual)
    dropout = visual.patch_dropout
    if isinstance(dropout, PatchDropout) and dropout.training and dropout.prob > 0:
        # Patch dropout drops random tokens, so token i no longer sits at patch position i.
        raise ValueError("mask prompt tuning cannot run with active patch dropout; put the CLIP in eval() mode")
    if images.dim() != 4 or crop_masks.shape[0] != images.shape[0] or crop_masks.shape[-2:] != images.shape[-2:]:
        raise ValueError(
            f"images {tuple(images.shape)} and crop masks {tuple(crop_masks.shape)} must be [B, 3, H, W] and [B, H, W]"
        )
    foreground = patch_foreground(crop_masks.to(images.device), visual.patch_size)

    x = visual.conv1(images)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, L, D]
    if foreground.shape[1] != x.shape[1]:
        raise ValueError(f"crop masks give {foreground.shape[1]} patches but the image gives {x.shape[1]}")
    table = prompts.prompts.to(x.dtype)
    x = torch.where(foreground[:, :, None], x, table[0][None])
    class_token = visual.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1).to(x.dtype)
    x = torch.cat([class_token, x], dim=1)
    x = x + visual.positional_embedding.to(x.dtype)
    x = visual.patch_dropout(x)
    x = visual.ln_pre(x)

    transformer = visual.transformer
    batch_first = transformer.batch_first
    if not batch_first:
        x = x.transpose(0, 1).contiguous()
    for index, block in enumerate(transformer.resblocks):
        if transformer.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x, attn_mask=None)
        if index + 1 < prompts.depth:
            x = _replace_background(x, foreground, table[index + 1], batch_first)
    if not batch_first:
        x = x.transpose(0, 1)

    # _pool is open_clip's own pooling step (token/avg/attentional); calling it keeps us exact.
    pooled, _ = visual._pool(x)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return pooled


def freeze_clip_for_prompt_tuning(clip_model: nn.Module, prompts: MaskPrompts) -> list[nn.Parameter]:
    """Freeze every CLIP weight (and switch it to eval mode); return the trainable prompt parameters.

    Eval mode keeps the frozen network deterministic (no dropout, no patch dropout)
    while the prompts learn; hand the returned list to the optimizer.
    """
    clip_model.requires_grad_(False)
    clip_model.eval()
    prompts.requires_grad_(True)
    return [prompts.prompts]


def save_mask_prompts(prompts: MaskPrompts, path: str | os.PathLike) -> None:
    """Write ``prompts`` as a safetensors file (atomically) with its format in the metadata."""
    tensor = prompts.prompts.detach().to(device="cpu", dtype=torch.float32).contiguous()
    # One metadata key only: safetensors writes metadata in hash-map order, so several keys
    # would make the bytes (and DVC's hash) differ from run to run. The sizes are the tensor's shape.
    metadata = {"format": PROMPTS_FORMAT}
    atomic_write_bytes(path, safetensors_bytes({_TENSOR_KEY: tensor}, metadata=metadata))


def load_mask_prompts(path: str | os.PathLike, device: torch.device | str = "cpu") -> MaskPrompts:
    """Read prompts written by :func:`save_mask_prompts`; clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: mask prompts file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            keys = set(handle.keys())
            tensor = handle.get_tensor(_TENSOR_KEY) if _TENSOR_KEY in keys else None
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from None
    if metadata.get("format") != PROMPTS_FORMAT or tensor is None:
        raise ValueError(f"{path}: not an ovseg mask prompts file (expected format {PROMPTS_FORMAT!r})")
    if tensor.dim() != 3:
        raise ValueError(f"{path}: prompts tensor must be (depth, num_patches, width), got {tuple(tensor.shape)}")
    prompts = MaskPrompts(*tensor.shape)
    with torch.no_grad():
        prompts.prompts.copy_(tensor)
    return prompts.to(device)
