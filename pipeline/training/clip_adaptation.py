"""Adapting CLIP to masked crops: finetuning the image tower, or mask prompt tuning.

One trainer for three stages (``finetune``, ``finetune_gt``, ``prompt_tune``): the symmetric
contrastive loss between masked crops and their nouns, text tower locked. Because the
text tower is locked, the embedding of every (noun, template) pair is computed once
up front; each sample uses a template drawn from (seed, epoch, row). Crops of the same
noun in one batch are not negatives of each other (``model.contrastive``'s group ids):
pushing a "zebra" crop away from the text of another "zebra" crop would be wrong.

Every crop is cut once before the first epoch (by ``num_workers`` data-loader workers)
and kept in memory as float16; each step augments its batch with one batched random
resized crop drawn from (seed, epoch).

``mode: image`` trains the image tower (the text tower stays fixed; logits are cosines times 100,
:data:`model.scoring.CLIP_LOGIT_SCALE`);
``mode: prompts`` freezes CLIP entirely and trains mask prompts (MPT).

Under torchrun (:mod:`pipeline.training.distributed`) each process encodes its part of
every batch; the loss is over the whole batch, on image embeddings gathered from every
process (the text side, template draws and augmentation draws are computed for the whole
batch on each), and the gradients are summed, so P processes train like one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from core.params import config_from_params
from core.progress import progress
from model.clip import ClipBundle
from model.contrastive import contrastive_loss
from model.mpt import MaskPrompts, freeze_clip_for_prompt_tuning
from model.scoring import CLIP_LOGIT_SCALE
from model.text import load_templates
from pipeline.training.augment import random_resized_crops_with_masks
from pipeline.training.checkpoint import run_key
from pipeline.training.data_order import epoch_batches, epoch_seed
from pipeline.training.distributed import Ranks, current, gather_rows, shard_bounds
from pipeline.training.loop import TrainingLoop
from pipeline.training.loss_log import LossLog
from pipeline.training.mask_pairs import MaskedCropDataset, MaskPair, collate

MODES = ("image", "prompts")


@dataclass(frozen=True)
class AdaptConfig:
    mode: str = "image"
    epochs: int = 5
    batch_size: int = 128
    lr: float = 5e-6
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_steps: int = 100
    crop_scale: tuple[float, float] = (0.9, 1.0)
    expand_ratio: float = 0.0
    mpt_depth: int = 3
    num_workers: int = 0
    seed: int = 0

    @classmethod
    def from_params(cls, params: dict, **overrides) -> AdaptConfig:
        cfg = config_from_params(cls, params, what="mask adaptation", **overrides)
        if cfg.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {cfg.mode!r}")
        return cfg

    def run_key(self, data_digest: str) -> str:
        return run_key({**asdict(self), "num_workers": None, "data": data_digest})

    def total_steps(self, num_pairs: int) -> int:
        """The optimizer steps of a run on ``num_pairs`` pairs: full batches only (``epoch_batches`` drops the rest).

        ``base_clip_longer`` (the equal-compute control) trains for exactly this many steps.
        """
        return self.epochs * (num_pairs // self.batch_size)


def pairs_digest(pairs: Sequence[MaskPair]) -> str:
    digest = hashlib.sha256()
    for p in pairs:
        digest.update(f"{p.image_path}\t{p.rle['counts']}\t{p.noun}\n".encode())
    return digest.hexdigest()[:16]


@torch.no_grad()
def noun_template_embeddings(bundle: ClipBundle, nouns: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """L2-normalised text embeddings ``[num_nouns, num_templates, D]`` of every filled template."""
    texts = [t.format(noun) for noun in nouns for t in templates]
    chunks = [bundle.encode_text(texts[i : i + 1024]) for i in range(0, len(texts), 1024)]
    return torch.cat(chunks).view(len(nouns), len(templates), -1)


def cut_crops(dataset: MaskedCropDataset, num_workers: int, batch_size: int = 256):
    """Every pair's crop, mask, noun index and validity, in row order (crops as float16)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate)
    parts = [(c.half(), m, y, v) for c, m, y, v in progress(loader, desc="cutting crops")]
    return tuple(torch.cat(column) for column in zip(*parts))


def cut_pair_crops(
    bundle: ClipBundle, pairs: Sequence[MaskPair], nouns: Sequence[str], expand_ratio: float, num_workers: int
) -> tuple[torch.Tensor, ...]:
    """:func:`cut_crops` of ``pairs`` at the CLIP's input size and normalisation, labels indexing ``nouns``."""
    dataset = MaskedCropDataset(
        pairs,
        nouns,
        size=bundle.image_size,
        mean=bundle.mean.cpu(),
        std=bundle.std.cpu(),
        expand_ratio=expand_ratio,
    )
    return cut_crops(dataset, num_workers)


def valid_rows(batch: Sequence[int], valid: torch.Tensor, ranks: Ranks) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(rows, local, start)``: the rows of ``batch`` whose crop is ``valid``, this process's part of them
    (those of its share of the batch) and where that part starts among ``rows``."""
    rows = torch.tensor(batch)
    keep = valid[rows]
    rows = rows[keep]
    lo, hi = shard_bounds(len(batch), ranks)
    start, stop = int(keep[:lo].sum()), int(keep[:hi].sum())
    return rows, rows[start:stop], start


def trained_part(bundle: ClipBundle, cfg: AdaptConfig) -> tuple[torch.nn.Module, list[torch.nn.Parameter]]:
    """The module ``cfg.mode`` trains and its parameters, the rest of the CLIP frozen: the image tower, or
    mask prompts (created here as ``bundle.prompts``)."""
    model = bundle.model
    if cfg.mode == "prompts":
        generator = torch.Generator().manual_seed(cfg.seed)
        bundle.prompts = MaskPrompts.for_visual(model.visual, cfg.mpt_depth, generator=generator).to(bundle.device)
        return bundle.prompts, freeze_clip_for_prompt_tuning(model, bundle.prompts)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.visual.parameters():
        p.requires_grad_(True)
    return model.visual, list(model.visual.parameters())


def adaptation_loop(
    trained: torch.nn.Module,
    params: list[torch.nn.Parameter],
    pairs: Sequence[MaskPair],
    cfg: AdaptConfig,
    *,
    checkpoint_dir: str | Path,
    desc: str,
) -> TrainingLoop:
    """The AdamW loop over ``trained`` (of :func:`trained_part`), its run keyed by the pairs."""
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    return TrainingLoop(
        trained,
        optimizer,
        params=params,
        desc=desc,
        checkpoint_dir=checkpoint_dir,
        run_key=cfg.run_key(pairs_digest(pairs)),
        epochs=cfg.epochs,
        total_steps=cfg.total_steps(len(pairs)),
        warmup_steps=cfg.warmup_steps,
    )


def adapt_clip(
    bundle: ClipBundle,
    pairs: Sequence[MaskPair],
    cfg: AdaptConfig,
    *,
    checkpoint_dir: str | Path,
    desc: str,
) -> LossLog:
    """Train ``bundle`` in place on masked-crop pairs; in prompts mode ``bundle.prompts`` is created.

    Under torchrun each process takes its part of every batch (batch_size / processes)."""
    ranks = current()
    shard_bounds(cfg.batch_size, ranks)  # refuses a batch that does not split evenly
    if len(pairs) < cfg.batch_size:
        raise ValueError(f"{desc}: {len(pairs)} pairs, fewer than one batch of {cfg.batch_size}")
    device = bundle.device
    model = bundle.model
    nouns = sorted({p.noun for p in pairs})
    templates = load_templates()
    model.eval()
    text_table = noun_template_embeddings(bundle, nouns, templates)
    scale = CLIP_LOGIT_SCALE

    trained, params = trained_part(bundle, cfg)
    loop = adaptation_loop(trained, params, pairs, cfg, checkpoint_dir=checkpoint_dir, desc=desc)
    all_crops, all_masks, all_labels, all_valid = cut_pair_crops(
        bundle, pairs, nouns, cfg.expand_ratio, cfg.num_workers
    )

    def losses(epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        template_rng = np.random.default_rng([cfg.seed, epoch, 7])
        generator = torch.Generator().manual_seed(epoch_seed(cfg.seed + 1, epoch))
        for batch in epoch_batches(len(pairs), cfg.batch_size, cfg.seed, epoch):
            rows, local, start = valid_rows(batch, all_valid, ranks)
            choice = torch.from_numpy(template_rng.integers(len(templates), size=len(rows)))
            crops, crop_masks = random_resized_crops_with_masks(
                all_crops[local].float(),
                all_masks[local],
                bundle.image_size,
                cfg.crop_scale,
                generator,
                flip=False,
                part_of=(start, len(rows)),
            )
            labels = all_labels[rows]
            text = text_table[labels.to(device), choice.to(device)]
            image = bundle.encode_image(crops.to(device), crop_masks.to(device) if cfg.mode == "prompts" else None)
            yield {"loss": contrastive_loss(gather_rows(image), text, scale, group_ids=labels.to(device))}

    log = loop.run(losses)
    for p in model.parameters():
        p.requires_grad_(True)
    return log
