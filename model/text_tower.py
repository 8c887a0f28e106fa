"""open_clip's native CLIP text tower: its weight digest, and encoding token ids up to each row's EOT.

The text transformer is causal: no position sees a later one. So the padding after a row's
EOT token cannot change the feature pooled there, and each row runs only up to its EOT. A
ViLD prompt is 8-20 of the 77 tokens: the five benchmarks' 20,118 prompts hold 7x fewer
tokens than their 77-token contexts.

A row's features must not depend on the rows it is batched with: mining embeds each image's
nouns, and every runner groups images differently. A cut at the batch's longest row would
break that, and so would the matmuls themselves (a CPU GEMM's float sums change with the
number of rows when it is small). So the rows are grouped by length and run in chunks of
exactly :data:`CHUNK_ROWS` rows (the last one filled with copies of its first row): every call
of the tower has a shape fixed by the length alone. A fixed shape is not enough on an Intel CPU, where MKL's
AVX2 branch gives a row of a small product other bits at another place in the batch; portable numerics add
its STRICT mode there (:data:`core.numerics.INTEL_MKL_CBWR`). The features equal the uncut ones to ~1e-6
(shorter rows, other float sums), not bit for bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol, cast

import torch
from open_clip.transformer import Transformer, text_global_pool
from torch import nn

#: Names how :func:`encode_tokens` computes; part of every text-cache key (model/text.py), so a change
#: of the computation that moves the floats (as the cut did) never serves an entry of the old one.
ENCODING = "cut-at-each-eot-32-rows/3"
#: Rows of every call of the text tower (see the module docstring).
CHUNK_ROWS = 32
_PARTS = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection", "attn_mask")


class NativeTextTower(Protocol):
    """The parts of open_clip's ``CLIP`` that its text tower consists of (:data:`_PARTS`, and the pooling)."""

    token_embedding: nn.Embedding
    positional_embedding: torch.Tensor
    transformer: Transformer
    ln_final: nn.Module
    text_projection: torch.Tensor | nn.Linear | None
    attn_mask: torch.Tensor | None
    text_pool_type: str


def is_native_text_tower(clip_model: nn.Module) -> bool:
    return all(hasattr(clip_model, name) for name in _PARTS)


def native_text_tower(clip_model: nn.Module) -> NativeTextTower:
    """``clip_model`` itself, after checking it carries open_clip's native text tower (``TypeError`` if not)."""
    missing = [name for name in _PARTS if not hasattr(clip_model, name)]
    if missing:
        raise TypeError(
            f"this needs open_clip's native CLIP text tower; {type(clip_model).__name__} lacks {', '.join(missing)}"
        )
    return cast(NativeTextTower, clip_model)


def text_tower_digest(clip_model: nn.Module) -> str:
    """SHA-256 (hex) of every text-tower weight of a CLIP, by name: token and positional embeddings,
    transformer, ``ln_final``, projection. The image tower and the logit scale are left out, so every
    CLIP whose text tower was locked during finetuning shares the digest."""
    digest = hashlib.sha256()
    native_text_tower(clip_model)
    for name, tensor in sorted(clip_model.state_dict().items()):
        if name.startswith(("visual.", "logit_")):
            continue
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()


def encode_tokens(
    clip_model: nn.Module, tokens: torch.Tensor, splice: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """Text features ``[N, embed_dim]`` (not normalised) of token ids ``[N, context_length]``: open_clip 3.x
    ``CLIP.encode_text`` step by step, each row up to its own EOT token (module docstring).

    ``splice`` edits the token embeddings ``[n, L, width]`` of a group of rows before the positions are
    added (learned text prompts swap their context vectors in there); it must act on each row alone.
    """
    tower = native_text_tower(clip_model)
    if tower.text_pool_type != "argmax":  # no EOT to cut at (e.g. "last" pooling): the whole context
        return _encode(tower, tokens, splice)
    lengths = tokens.argmax(dim=1) + 1  # EOT is the largest id, as open_clip pools
    parts, order = [], []
    for length in torch.unique(lengths).tolist():
        rows = torch.nonzero(lengths == length).flatten()
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[start : start + CHUNK_ROWS]
            filled = torch.cat([chunk, chunk[:1].expand(CHUNK_ROWS - len(chunk))])
            parts.append(_encode(tower, tokens[filled, :length], splice)[: len(chunk)])
            order.append(chunk)
    return torch.cat(parts)[torch.argsort(torch.cat(order))]


def _encode(
    tower: NativeTextTower, tokens: torch.Tensor, splice: Callable[[torch.Tensor], torch.Tensor] | None
) -> torch.Tensor:
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
