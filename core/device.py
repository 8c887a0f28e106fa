"""Where torch runs: the device and the number of CPU threads (torch is imported only when asked)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.numerics import pin_torch

if TYPE_CHECKING:
    import argparse

    import torch


def pick_device(requested: str | None = "auto") -> torch.device:
    """'auto' → CUDA when available, else CPU; anything else is passed to torch.device.

    Every torch process picks its device, so this is also where portable numerics' in-process part is set
    (:func:`core.numerics.pin_torch`).
    """
    import torch

    pin_torch()

    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{requested}' requested but CUDA is not available")
    return device


def add_device_arguments(cli: argparse.ArgumentParser) -> None:
    """A command's ``--device`` (for :func:`pick_device`) and ``--threads`` (for :func:`set_threads`, default 1)."""
    cli.add_argument("--device", default="auto")
    cli.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a busy 2-core machine 2 threads ran ~15x slower)",
    )


def set_threads(threads: int | None, what: str = "threads") -> None:
    """Use ``threads`` CPU threads for torch's intra-op work; None keeps torch's default: ``numerics.threads``
    under portable numerics (:mod:`core.numerics`), one per core under native.

    CPU float sums depend on the thread count, so a stage that must reproduce bitwise fixes it.
    """
    pin_torch()
    if threads is None:
        return
    if int(threads) < 1:
        raise ValueError(f"{what} must be null or >= 1, got {threads}")
    import torch

    torch.set_num_threads(int(threads))
