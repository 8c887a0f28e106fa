"""Learned text prompts (zsseg.baseline's CoOp-style context vectors) for open_clip's text tower.

zsseg.baseline (Xu et al. 2021) replaces the hand-written templates ("a photo of a {}.")
by ``n_ctx`` context vectors shared by all classes and learned on the seen classes with
CLIP frozen. A class name is encoded as the token sequence

    [SOS] ctx_1 … ctx_n  <class-name tokens>  "."  [EOS]

through the frozen text tower, exactly as ``CLIP.encode_text`` does (token embedding,
positional embedding, the transformer with its causal mask, ``ln_final``, pooling at the
EOT token, the text projection). The sequence is tokenised as ``"X X … X <name>."``
(one placeholder token per context vector, CoOp's trick) and the placeholders'
embeddings are swapped for the context vectors, so pooling and truncation follow
open_clip's own tokenizer. With the context vectors set to the token embeddings of a
real prefix ("a photo of a") the encoding equals ``encode_text("a photo of a <name>.")``.

Prompts are stored as ``text_prompts.safetensors`` in a CLIP folder, with the
fingerprint of the text tower they were learned on: they fit that text tower only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from core.classnames import split_synonyms
from core.io import atomic_write_bytes
from model.text_tower import encode_tokens, native_text_tower, text_tower_digest

TEXT_PROMPTS_FILE = "text_prompts.safetensors"
TEXT_PROMPTS_FORMAT = "ovseg.text_prompts/1"
_TENSOR_KEY = "ctx"
_METADATA_KEY = "ovseg"
PLACEHOLDER = "X"  # one BPE token per context vector ("x</w>")


class TextPrompts(nn.Module):
    """``n_ctx`` learnable context vectors of the text tower's width: one parameter ``ctx [n_ctx, width]``,
    initialised N(0, 0.02) as in zsseg.baseline and CoOp."""

    def __init__(self, n_ctx: int, width: int, *, generator: torch.Generator | None = None):
        super().__init__()
        for name, value in (("n_ctx", n_ctx), ("width", width)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TextPrompts: {name} must be a positive integer, got {value!r}")
        self.ctx = nn.Parameter(torch.empty(n_ctx, width))
        nn.init.normal_(self.ctx, mean=0.0, std=0.02, generator=generator)

    @classmethod
    def for_clip(
        cls, clip_model: nn.Module, n_ctx: int = 16, *, generator: torch.Generator | None = None
    ) -> TextPrompts:
        """Prompts sized for ``clip_model``'s text tower, on its device."""
        embedding = native_text_tower(clip_model).token_embedding
        return cls(n_ctx, embedding.embedding_dim, generator=generator).to(embedding.weight.device)

    @property
    def n_ctx(self) -> int:
        return self.ctx.shape[0]

    @property
    def width(self) -> int:
        return self.ctx.shape[1]


def text_fingerprint(clip_model: nn.Module) -> str:
    """A short :func:`text_tower_digest`: prompts fit only the text tower they were learned on."""
    return text_tower_digest(clip_model)[:16]


def prompt_tokens(tokenizer: Any, n_ctx: int, names: Sequence[str]) -> torch.Tensor:
    """Token ids ``[N, context_length]`` of ``"X X … X <name>."`` (``n_ctx`` placeholders) for each name.

    ``ValueError`` when the placeholders do not come out as ``n_ctx`` single tokens right after SOS
    (another tokenizer) or when a name leaves no room for the EOT token.
    """
    prefix = " ".join([PLACEHOLDER] * n_ctx)
    tokens = tokenizer([f"{prefix} {name}." for name in names])
    placeholder = tokenizer([PLACEHOLDER])[0, 1]
    if not bool((tokens[:, 1 : 1 + n_ctx] == placeholder).all()):
        raise ValueError(f"the tokenizer does not give one token per context placeholder {PLACEHOLDER!r}")
    return tokens


def encode_with_text_prompts(
    clip_model: nn.Module, tokenizer: Any, prompts: TextPrompts, names: Sequence[str]
) -> torch.Tensor:
    """Text features ``[N, embed_dim]`` (not normalised, like ``CLIP.encode_text``) of ``names``
    behind the learned context; gradients reach ``prompts.ctx`` when enabled.

    :func:`model.text_tower.encode_tokens` with the context vectors swapped in after the token embedding.
    """
    embedding = native_text_tower(clip_model).token_embedding
    if prompts.width != embedding.embedding_dim:
        raise ValueError(
            f"text prompts of width {prompts.width} do not fit a text tower of width {embedding.embedding_dim}"
        )
    tokens = prompt_tokens(tokenizer, prompts.n_ctx, names).to(embedding.weight.device)

    def splice(x: torch.Tensor) -> torch.Tensor:
        ctx = prompts.ctx.to(dtype=x.dtype, device=x.device)[None].expand(x.shape[0], -1, -1)
        return torch.cat([x[:, :1], ctx, x[:, 1 + prompts.n_ctx :]], dim=1)

    return encode_tokens(clip_model, tokens, splice)


def prompted_class_embeddings(
    clip_model: nn.Module, tokenizer: Any, prompts: TextPrompts, class_names: Sequence[str]
) -> torch.Tensor:
    """L2-normalised float32 ``[C, embed_dim]``: per class, its synonyms' normalised prompted encodings
    averaged and renormalised (the rule of :class:`model.text.TextClassifier`), with gradients."""
    per_class = [split_synonyms(name) for name in class_names]
    synonyms = sorted({s for group in per_class for s in group})
    encoded = F.normalize(encode_with_text_prompts(clip_model, tokenizer, prompts, synonyms).float(), dim=-1)
    row = {s: i for i, s in enumerate(synonyms)}
    means = torch.stack([encoded[[row[s] for s in group]].mean(dim=0) for group in per_class])
    return F.normalize(means, dim=-1)


def freeze_clip_for_text_prompts(clip_model: nn.Module, prompts: TextPrompts) -> list[nn.Parameter]:
    """Freeze both towers of CLIP (and switch it to eval mode); return the trainable context vectors."""
    clip_model.requires_grad_(False)
    clip_model.eval()
    prompts.requires_grad_(True)
    return [prompts.ctx]


def save_text_prompts(prompts: TextPrompts, path: str | os.PathLike, clip_model: nn.Module) -> None:
    """Write ``prompts`` as safetensors (atomically), recording the fingerprint of ``clip_model``'s text tower."""
    tensor = prompts.ctx.detach().to(device="cpu", dtype=torch.float32).contiguous()
    # One metadata key (a sorted JSON string): safetensors writes several keys in hash-map order,
    # which would change the bytes from run to run.
    record = {"format": TEXT_PROMPTS_FORMAT, "text_fingerprint": text_fingerprint(clip_model)}
    metadata = {_METADATA_KEY: json.dumps(record, sort_keys=True)}
    atomic_write_bytes(path, safetensors_bytes({_TENSOR_KEY: tensor}, metadata=metadata))


def load_text_prompts(
    path: str | os.PathLike, clip_model: nn.Module, device: torch.device | str = "cpu"
) -> TextPrompts:
    """Read prompts written by :func:`save_text_prompts` for ``clip_model``; ``ValueError`` naming the file
    when it is not such a file or was learned on another text tower."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text prompts file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensor = handle.get_tensor(_TENSOR_KEY) if _TENSOR_KEY in set(handle.keys()) else None
        record = json.loads(metadata.get(_METADATA_KEY, "{}"))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{path}: not a readable text prompts file ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != TEXT_PROMPTS_FORMAT or tensor is None:
        raise ValueError(f"{path}: not an ovseg text prompts file (expected format {TEXT_PROMPTS_FORMAT!r})")
    if tensor.dim() != 2:
        raise ValueError(f"{path}: context tensor must be (n_ctx, width), got {tuple(tensor.shape)}")
    if record.get("text_fingerprint") != text_fingerprint(clip_model):
        raise ValueError(
            f"{path}: these prompts were learned on another CLIP text tower (fingerprint "
            f"{record.get('text_fingerprint')} differs from {text_fingerprint(clip_model)})"
        )
    prompts = TextPrompts(*tensor.shape)
    with torch.no_grad():
        prompts.ctx.copy_(tensor)
    return prompts.to(device)
