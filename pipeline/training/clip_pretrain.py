"""Contrastive pretraining of a CLIP on the world's image–caption pairs.

Used by the demo's ``base_clip`` (from scratch: no pretrained weights can be downloaded
here) and by ``base_clip_longer``, the equal-compute control, which continues it from
``artifacts/clip_base`` for a given number of steps (``max_steps``). Both towers are
trained with the symmetric CLIP loss, AdamW and a warm-up + cosine schedule. Each
epoch pairs every image with one of its captions, chosen from (seed, epoch), and
augments it with a random resized crop and a horizontal flip, so that a resumed
run sees exactly the batches an uninterrupted one would.

Under torchrun (:mod:`pipeline.training.distributed`) each process encodes its part of
every batch (images and captions; the crop and flip draws are made for the whole batch);
the contrastive loss is over the whole batch, on image and text embeddings gathered from
every process, the logit scale's own gradient is taken on rank 0 only, and the gradients
are summed, so P processes train like one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.params import check_keys, config_from_params
from model.clip import ClipBundle
from model.contrastive import contrastive_loss
from pipeline.training.augment import random_resized_crops
from pipeline.training.checkpoint import run_key
from pipeline.training.data_order import epoch_batches, epoch_seed
from pipeline.training.distributed import current, gather_rows, shard_bounds
from pipeline.training.loop import TrainingLoop
from pipeline.training.loss_log import LossLog
from pipeline.training.optim import weight_decay_groups


@dataclass(frozen=True)
class PretrainConfig:
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_steps: int = 50
    crop_scale: tuple[float, float] = (0.5, 1.0)
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimizer steps, the schedule's span (None: every epoch)

    @classmethod
    def from_params(cls, params: dict, seed: int) -> PretrainConfig:
        return config_from_params(cls, params, what="pretraining", seed=seed)

    def total_steps(self, num_images: int) -> int:
        """The optimizer steps of a run on ``num_images`` images: full batches of every epoch, capped by
        ``max_steps``."""
        steps = self.epochs * (num_images // self.batch_size)
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def run_key(self) -> str:
        return run_key(asdict(self))


#: The keys of a continued run's section (``base_clip_longer``); its step budget and batch size come from the run it
#: matches.
CONTINUED_KEYS = ("lr", "weight_decay", "warmup_steps", "crop_scale", "seed")


def continued_config(params: dict, *, steps: int, batch_size: int, num_images: int, what: str) -> PretrainConfig:
    """The settings of a run continuing a pretraining for exactly ``steps`` steps of ``batch_size`` images.

    ``params`` holds :data:`CONTINUED_KEYS` only; the epochs are as many as ``steps`` needs (the last one
    stops at ``steps``).
    """
    check_keys(params, CONTINUED_KEYS, what)
    if steps < 1:
        raise ValueError(f"{what}: a budget of {steps} steps (the run to match takes none)")
    if num_images < batch_size:
        raise ValueError(f"{what}: {num_images} images, fewer than one batch of {batch_size}")
    epochs = -(-steps // (num_images // batch_size))
    return config_from_params(PretrainConfig, params, what=what, epochs=epochs, batch_size=batch_size, max_steps=steps)


def pretrain_loop(
    model: torch.nn.Module, num_images: int, cfg: PretrainConfig, *, checkpoint_dir: str | Path, desc: str
) -> TrainingLoop:
    """The AdamW loop over the whole CLIP (embeddings not decayed), ``cfg``'s steps over ``num_images``."""
    optimizer = torch.optim.AdamW(
        weight_decay_groups(model, cfg.weight_decay, no_decay=("embedding",)), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps
    )
    total_steps = cfg.total_steps(num_images)
    return TrainingLoop(
        model,
        optimizer,
        desc=desc,
        checkpoint_dir=checkpoint_dir,
        run_key=cfg.run_key(),
        epochs=-(-total_steps // (num_images // cfg.batch_size)),
        total_steps=total_steps,
        warmup_steps=cfg.warmup_steps,
    )  # the last epoch may stop early


def pretrain_clip(
    bundle: ClipBundle,
    images: np.ndarray,
    captions: Sequence[Sequence[str]],
    cfg: PretrainConfig,
    *,
    checkpoint_dir: str | Path,
    desc: str = "base_clip",
) -> LossLog:
    """Train ``bundle.model`` in place on ``images`` ``[N,H,W,3]`` uint8 and their captions.

    Under torchrun each process takes its part of every batch (batch_size / processes)."""
    ranks = current()
    shard_bounds(cfg.batch_size, ranks)  # refuses a batch that does not split evenly
    if len(images) != len(captions) or len(images) < cfg.batch_size:
        raise ValueError(f"need at least batch_size={cfg.batch_size} images with captions, got {len(images)}")
    if any(len(c) == 0 for c in captions):
        raise ValueError("every image needs at least one caption")
    device = bundle.device
    model = bundle.model
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # uint8 [N,3,H,W], kept on CPU
    mean, std = bundle.mean.view(1, 3, 1, 1), bundle.std.view(1, 3, 1, 1)
    loop = pretrain_loop(model, len(images), cfg, checkpoint_dir=checkpoint_dir, desc=desc)

    def losses(epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        rng = np.random.default_rng(epoch_seed(cfg.seed, epoch))
        choice = [int(rng.integers(len(c))) for c in captions]
        generator = torch.Generator().manual_seed(epoch_seed(cfg.seed + 1, epoch))
        for batch in epoch_batches(len(images), cfg.batch_size, cfg.seed, epoch):
            start, stop = shard_bounds(len(batch), ranks)  # this process's part of the batch
            local = batch[start:stop]
            x = pixels[torch.tensor(local)].float().div_(255)
            x = random_resized_crops(x, bundle.image_size, cfg.crop_scale, generator, part_of=(start, len(batch)))
            x = ((x.to(device) - mean) / std).to(bundle.input_dtype)
            texts = [captions[i][choice[i]] for i in local]
            image_emb = F.normalize(model.encode_image(x).float(), dim=-1)
            text_emb = bundle.encode_text(texts)  # up to the batch's last EOT (model/text_tower.py)
            scale = model.logit_scale.exp().clamp(max=100)
            # every process computes the whole batch's loss; the gradient reaches its own rows through
            # gather_rows, and the scale's direct one is rank 0's alone (the sum then counts it once)
            loss = contrastive_loss(
                gather_rows(image_emb), gather_rows(text_emb), scale if ranks.is_main else scale.detach()
            )
            yield {"loss": loss, "logit_scale": scale}

    return loop.run(losses)
