"""Mixed precision: which autocast dtype a device gets, and the autocast context."""
from __future__ import annotations

import torch

from model.precision import autocast_context, native_bf16

__all__ = ["PRECISIONS", "autocast_context", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; ``None`` means plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
        return torch.float16
    if native_bf16(device):
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else None
