"""Transformer decoder: learned queries attend to each other and to one backbone level."""

from __future__ import annotations

import torch
from torch import nn

from .config import DecoderConfig
from .layers import sine_positions


class DecoderLayer(nn.Module):
    """Post-norm DETR layer: self-attention, cross-attention to the memory, FFN.

    Positions are added to queries and keys, never to values.
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(ffn_dim, dim)
        )
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(
        self, queries: torch.Tensor, query_pos: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor
    ) -> torch.Tensor:
        q = queries + query_pos
        queries = self.norm1(queries + self.drop1(self.self_attn(q, q, queries, need_weights=False)[0]))
        attended = self.cross_attn(queries + query_pos, memory + memory_pos, memory, need_weights=False)[0]
        queries = self.norm2(queries + self.drop2(attended))
        return self.norm3(queries + self.drop3(self.ffn(queries)))


class QueryDecoder(nn.Module):
    """``num_queries`` learned query features and positions, refined by ``num_layers`` layers.

    Returns the output of every layer after a shared final LayerNorm,
    ``[num_layers, B, Q, hidden_dim]``, so every layer can be supervised.
    """

    def __init__(self, memory_channels: int, config: DecoderConfig):
        super().__init__()
        dim = config.hidden_dim
        self.input_proj = nn.Conv2d(memory_channels, dim, 1)
        self.query_feat = nn.Parameter(torch.empty(config.num_queries, dim))
        self.query_pos = nn.Parameter(torch.empty(config.num_queries, dim))
        nn.init.normal_(self.query_feat, std=0.02)
        nn.init.normal_(self.query_pos, std=1.0)
        self.layers = nn.ModuleList(
            DecoderLayer(dim, config.num_heads, config.ffn_dim, config.dropout) for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        memory = self.input_proj(feature)
        batch, dim, height, width = memory.shape
        memory = memory.flatten(2).transpose(1, 2)  # [B, HW, dim]
        memory_pos = sine_positions(height, width, dim, memory.device, memory.dtype)[None]
        queries = self.query_feat[None].expand(batch, -1, -1)
        query_pos = self.query_pos[None].expand(batch, -1, -1)
        outputs = []
        for layer in self.layers:
            queries = layer(queries, query_pos, memory, memory_pos)
            outputs.append(self.norm(queries))
        return torch.stack(outputs)
