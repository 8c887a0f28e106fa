"""The AdamW loop of the recipes trained under autocast: the proposer and the Mask-Adapter.

Both train one module with AdamW (some parameters not decayed), a warm-up + cosine schedule over
full batches of every epoch, a clipped gradient, a loss scaler under float16 autocast, and each
process's share of the loss terms (:class:`~pipeline.training.loop.TrainingLoop`'s ``shared_terms``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from model.precision import training_autocast_dtype
from pipeline.training.loop import TrainingLoop
from pipeline.training.optim import weight_decay_groups

if TYPE_CHECKING:  # the recipes import this module
    from pipeline.training.mask_adapter import AdapterTrainConfig
    from pipeline.training.proposer import ProposerTrainConfig


def autocast_adamw_loop(
    model: torch.nn.Module,
    cfg: AdapterTrainConfig | ProposerTrainConfig,
    *,
    no_decay: Sequence[str],
    num_samples: int,
    run_key: str,
    device: torch.device,
    checkpoint_dir: str | os.PathLike,
    desc: str,
    min_lr_ratio: float = 0.0,
) -> tuple[TrainingLoop, torch.dtype | None]:
    """The loop over ``model`` for ``cfg``'s epochs over ``num_samples`` samples, and the autocast dtype of
    ``cfg.precision`` on ``device`` (``None``: float32); parameters whose name contains one of ``no_decay``
    are not decayed."""
    dtype = training_autocast_dtype(cfg.precision, device)
    optimizer = torch.optim.AdamW(weight_decay_groups(model, cfg.weight_decay, no_decay=no_decay), lr=cfg.lr)
    loop = TrainingLoop(
        model,
        optimizer,
        desc=desc,
        checkpoint_dir=checkpoint_dir,
        run_key=run_key,
        epochs=cfg.epochs,
        total_steps=cfg.epochs * (num_samples // cfg.batch_size),
        warmup_steps=cfg.warmup_steps,
        min_lr_ratio=min_lr_ratio,
        grad_clip=cfg.grad_clip,
        scaler=torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
        shared_terms=True,
    )
    return loop, dtype
