"""Mixed precision: the one vocabulary of precision settings, the autocast of a run, and the
scoring that must stay float32.

:data:`Precision` names every precision a setting may say, for training, inference and
:func:`model.clip.build_clip` alike; each accepts the part of it that it supports, checked by
:func:`check_precision`.

``auto`` picks bf16 where the device computes it natively (CUDA with bf16, a CPU with AVX512-BF16
or AMX). Elsewhere an inference run takes fp32 (a CPU without bf16 instructions converts every
operand and runs bf16 matmuls several times slower than fp32, measured: 6x on an AVX2-only AMD
EPYC), and a training run fp16 on CUDA, fp32 on a CPU (:func:`training_autocast_dtype`). An
inference run resolves it once, on its device (:func:`resolve_inference_precision`), and records
what it ran.

A run (an evaluation, a mining job) enters :func:`inference_autocast` once, around every
model call: the towers' matmuls and convolutions then run in bf16. What follows a model
call (softmaxes, ensembles, semantic maps, argmaxes, mask IoUs) is decorated with
:func:`full_precision`: autocast is off inside, so a matmul there stays float32 (a bf16
``@`` would round a pixel count above 256 or a cosine to 3 digits).

Under portable numerics (:mod:`core.numerics`) every run is fp32: ``auto`` resolves to it on any device,
and an explicit bf16 or fp16 is an error, since its bits would depend on the CPU's bf16 support.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Collection
from typing import Literal, TypeVar, get_args

import torch

from core.numerics import portable

#: A precision setting: plain float32, bf16 or fp16 (autocast in a run; open_clip's low-precision
#: weights in :func:`model.clip.build_clip`), or ``auto`` (resolved on the run's device).
Precision = Literal["auto", "fp32", "bf16", "fp16"]
#: Every :data:`Precision`, for checks at run time.
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
#: The precisions an inference run resolves to: plain float32, or bf16 autocast (CPU and CUDA).
INFERENCE_PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")
#: What an inference setting may say: a precision, or ``auto`` (resolved on the run's device).
PRECISION_SETTINGS: tuple[Precision, ...] = (*INFERENCE_PRECISIONS, "auto")
_AUTOCAST_DEVICES = ("cpu", "cuda")

F = TypeVar("F", bound=Callable)


def check_precision(precision: object, where: str, supported: Collection[Precision] = PRECISIONS) -> Precision:
    """``precision`` when it is a :data:`Precision` among ``supported``, else ``ValueError`` naming ``where``."""
    if precision not in get_args(Precision) or precision not in supported:
        raise ValueError(f"{where} must be one of {', '.join(supported)}, got {precision!r}")
    return precision  # type: ignore[return-value]


def check_inference_precision(precision: object, where: str) -> Precision:
    """``precision`` when it is one of :data:`PRECISION_SETTINGS`, else ``ValueError`` naming ``where``."""
    return check_precision(precision, where, PRECISION_SETTINGS)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA with bf16 support, or a CPU with AVX512-BF16 or AMX."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    # Private helpers (stable since torch 2.1); without them, assume no native bf16.
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe is not None and probe() for probe in probes)


def check_portable_precision(precision: Precision) -> None:
    """``ValueError`` for a low precision asked for explicitly under portable numerics."""
    if portable() and precision not in ("auto", "fp32"):
        raise ValueError(
            f"precision {precision}: portable numerics compute in fp32 (params numerics.mode); "
            "use fp32 or auto, or numerics.mode: native"
        )


def resolve_inference_precision(precision: Precision, device: torch.device | str) -> Precision:
    """The precision a run with setting ``precision`` uses on ``device``: ``auto`` becomes bf16 where
    :func:`native_bf16`, else fp32; fp32 and bf16 stay. Portable numerics: always fp32."""
    check_inference_precision(precision, "precision")
    check_portable_precision(precision)
    if portable():
        return "fp32"
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op for fp32 (``None``)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def inference_autocast(precision: Precision, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast of an inference run on ``device``: none for ``fp32``, bf16 for ``bf16``
    (``auto``: as :func:`resolve_inference_precision`)."""
    bf16 = resolve_inference_precision(precision, device) == "bf16"
    return autocast_context(torch.device(device), torch.bfloat16 if bf16 else None)


def training_autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training run with setting ``precision`` on ``device``; ``None`` means plain fp32.

    ``auto`` is bf16 where :func:`native_bf16`, else fp16 on CUDA and fp32 on a CPU. Portable numerics: fp32.
    """
    check_portable_precision(precision)
    if precision == "fp32" or portable():
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
