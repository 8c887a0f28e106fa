"""Prediction heads: open-vocabulary class logits and mask logits from query embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import HeadConfig
from .layers import MLP


class ClassHead(nn.Module):
    """Scores each query against class names given as text embeddings at call time.

    The query is mapped by an MLP to the text space and L2-normalised;
    ``logits[..., c] = scale · cos(query, text_c)`` for the C given classes and
    ``logits[..., C] = scale · cos(query, no_object)`` for a learned "no object"
    embedding. Nothing in the head depends on C, so any vocabulary can be scored.
    """

    def __init__(self, hidden_dim: int, text_dim: int, config: HeadConfig):
        super().__init__()
        self.text_dim = text_dim
        self.max_logit_scale = config.max_logit_scale
        self.project = MLP(hidden_dim, hidden_dim, text_dim, config.class_layers)
        self.no_object = nn.Parameter(torch.randn(text_dim) * text_dim**-0.5)
        log_scale = torch.tensor(math.log(config.logit_scale_init))
        if config.learn_logit_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def embed(self, queries: torch.Tensor) -> torch.Tensor:
        """L2-normalised class embeddings of the queries, ``[..., text_dim]``."""
        return F.normalize(self.project(queries), dim=-1)

    def forward(self, queries: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        embedded = self.embed(queries)
        classes = torch.cat((text_embeddings.to(embedded.dtype), self.no_object[None].to(embedded.dtype)))
        classes = F.normalize(classes, dim=-1)
        scale = self.log_scale.exp().clamp(max=self.max_logit_scale)
        return scale * embedded @ classes.T


class MaskHead(nn.Module):
    """Mask logits: an MLP maps each query to a mask embedding, dotted with every pixel embedding."""

    def __init__(self, hidden_dim: int, mask_dim: int, config: HeadConfig):
        super().__init__()
        self.embed = MLP(hidden_dim, hidden_dim, mask_dim, config.mask_layers)

    def forward(self, queries: torch.Tensor, pixel_embeddings: torch.Tensor) -> torch.Tensor:
        """``queries [B,Q,hidden]``, ``pixel_embeddings [B,mask_dim,h,w]`` → ``[B,Q,h,w]``."""
        return torch.einsum("bqc,bchw->bqhw", self.embed(queries), pixel_embeddings)
