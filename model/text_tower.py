"""open_clip's native CLIP text tower: its weight digest, and encoding token ids up to the last EOT.

The text transformer is causal: no position sees a later one. So the padding after the
last EOT token of a batch cannot change any feature pooled at an EOT, and the sequence is
cut there before the transformer runs. Prompts of 8-20 tokens then cost a quarter of
the 77-token context (ViT-B/16 on 2 CPU cores: 3.9x prompts/s, ``benchmarks/text_embedding_cache.py``).
The float sums run over shorter rows, so the features equal the uncut ones to ~1e-6, not bit for bit.
"""
from __future__ import annotations

import hashlib
from typing import Callable

import torch
from open_clip.transformer import text_global_pool
from torch import nn

#: Names how :func:`encode_tokens` computes; part of every text-cache key (model/text.py), so a change
#: of the computation that moves the floats (as the cut did) never serves an entry of the old one.
ENCODING = "cut-at-last-eot/1"
_PARTS = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection", "attn_mask")


def is_native_text_tower(clip_model: nn.Module) -> bool:
    return all(hasattr(clip_model, name) for name in _PARTS)


def native_text_tower(clip_model: nn.Module) -> nn.Module:
    """``clip_model`` itself, after checking it carries open_clip's native text tower (``TypeError`` if not)."""
    missing = [name for name in _PARTS if not hasattr(clip_model, name)]
    if missing:
        raise TypeError(f"this needs open_clip's native CLIP text tower; "
                        f"{type(clip_model).__name__} lacks {', '.join(missing)}")
    return clip_model


def text_tower_digest(clip_model: nn.Module) -> str:
    """SHA-256 (hex) of every text-tower weight of a CLIP, by name: token and positional embeddings,
    transformer, ``ln_final``, projection. The image tower and the logit scale are left out, so every
    CLIP whose text tower was locked during finetuning shares the digest."""
    digest = hashlib.sha256()
    for name, tensor in sorted(native_text_tower(clip_model).state_dict().items()):
        if name.startswith("visual.") or name.startswith("logit_"):
            continue
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()


def encode_tokens(clip_model: nn.Module, tokens: torch.Tensor,
                  splice: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Text features ``[N, embed_dim]`` (not normalised) of token ids ``[N, context_length]``: open_clip 3.x
    ``CLIP.encode_text`` step by step, on the sequence up to the batch's last EOT token (module docstring).

    ``splice`` edits the token embeddings ``[N, L, width]`` before the positions are added
    (learned text prompts swap their context vectors in there).
    """
    tower = native_text_tower(clip_model)
    if tower.text_pool_type == "argmax":  # EOT is the largest id, as open_clip pools
        tokens = tokens[:, :int(tokens.argmax(dim=1).max()) + 1]
    length = tokens.shape[1]
    cast_dtype = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens).to(cast_dtype)
    if splice is not None:
        x = splice(x)
    x = x + tower.positional_embedding[:length].to(cast_dtype)
    attn_mask = tower.attn_mask[:length, :length] if tower.attn_mask is not None else None
    x = tower.transformer(x, attn_mask=attn_mask)
    x = tower.ln_final(x)
    x = text_global_pool(x, tokens, tower.text_pool_type, eos_token_id=getattr(tower, "text_eos_id", None))
    projection = tower.text_projection
    if projection is not None:
        x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
    return x
