"""Optimizer building blocks shared by the trainers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def weight_decay_groups(
    model: torch.nn.Module, weight_decay: float, no_decay: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """AdamW parameter groups: weight decay on matrices and kernels (``ndim >= 2``) only.

    Biases and norms are never decayed, nor any parameter whose name contains one of
    ``no_decay`` (embeddings, learned queries, scales). Frozen parameters are left out.
    """
    decay, rest = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim >= 2 and not any(n in name for n in no_decay):
            decay.append(param)
        else:
            rest.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
