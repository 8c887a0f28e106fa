"""Mixed precision for inference: the autocast of a run, and the scoring that must stay float32.

A run (an evaluation, a mining job) enters :func:`inference_autocast` once, around every
model call: the towers' matmuls and convolutions then run in bf16. What follows a model
call (softmaxes, ensembles, semantic maps, argmaxes, mask IoUs) is decorated with
:func:`full_precision`: autocast is off inside, so a matmul there stays float32 (a bf16
``@`` would round a pixel count above 256 or a cosine to 3 digits).
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable, TypeVar

import torch

#: The precisions of an inference run: plain float32, or bf16 autocast (CPU and CUDA).
INFERENCE_PRECISIONS = ("fp32", "bf16")
_AUTOCAST_DEVICES = ("cpu", "cuda")

F = TypeVar("F", bound=Callable)


def check_inference_precision(precision: object, where: str) -> str:
    """``precision`` when it is one of :data:`INFERENCE_PRECISIONS`, else ``ValueError`` naming ``where``."""
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(f"{where} must be one of {', '.join(INFERENCE_PRECISIONS)}, got {precision!r}")
    return str(precision)


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op for fp32 (``None``)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def inference_autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast of an inference run on ``device``: none for ``fp32``, bf16 for ``bf16``."""
    check_inference_precision(precision, "precision")
    return autocast_context(torch.device(device), torch.bfloat16 if precision == "bf16" else None)


def full_precision(function: F) -> F:
    """Run ``function`` with autocast off (on every device type where it is on); a no-op outside autocast.

    For pure scoring functions that take float32 inputs and must compute in float32 under
    an enclosing :func:`inference_autocast`.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        active = [device for device in _AUTOCAST_DEVICES if torch.is_autocast_enabled(device)]
        if not active:
            return function(*args, **kwargs)
        with contextlib.ExitStack() as stack:
            for device in active:
                stack.enter_context(torch.autocast(device_type=device, enabled=False))
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
