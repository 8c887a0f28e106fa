"""Learning zsseg.baseline's text prompts: context vectors trained on seen-class crops, CLIP frozen.

The data are masked crops of the seen classes' ground-truth segments (one per class
present in a training label map; :func:`pipeline.training.mask_pairs.ground_truth_pairs`),
cut once by ``finetune_gt``'s crop code and kept in memory; ``samples_per_class`` keeps a
seeded random subset of each class (zsseg: 32). Each step augments its batch (a random
resized crop and a flip drawn from (seed, epoch)), embeds it with the frozen image tower,
embeds every seen class name behind the learned context with the frozen text tower
(synonyms averaged, as at inference) and takes the cross-entropy of the cosine logits
times 100 (:data:`model.scoring.CLIP_LOGIT_SCALE`, zsseg's fixed temperature). SGD with momentum,
warm-up then cosine, a checkpoint per epoch.

Under torchrun (:mod:`pipeline.training.distributed`) each process embeds its part of every
batch (the augmentation drawn for the whole batch) and its part of the classes (the text
pass, forward and backward, is most of a step); both are gathered from every process, each
computes the whole batch's loss, the gradient reaching the context through its own classes,
and the gradients are summed, so P processes train like one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.classnames import display_name
from core.params import config_from_params
from model.clip import ClipBundle
from model.mask_adapter import clip_fingerprint
from model.scoring import CLIP_LOGIT_SCALE
from model.text_prompts import TextPrompts, freeze_clip_for_text_prompts, prompted_class_embeddings, text_fingerprint
from pipeline.training.augment import random_resized_crops
from pipeline.training.checkpoint import run_key
from pipeline.training.clip_adaptation import cut_pair_crops, pairs_digest, valid_rows
from pipeline.training.data_order import epoch_batches, epoch_seed
from pipeline.training.distributed import Ranks, current, gather_rows, shard_bounds
from pipeline.training.loop import TrainingLoop
from pipeline.training.loss_log import LossLog
from pipeline.training.mask_pairs import MaskPair


@dataclass(frozen=True)
class TextPromptConfig:
    """The ``text_prompts`` params section (less ``device``): see params.yaml for the values and why."""

    n_ctx: int = 16
    epochs: int = 10
    batch_size: int = 32
    samples_per_class: int | None = 32
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 100
    crop_scale: tuple[float, float] = (0.9, 1.0)
    crop_ratio: tuple[float, float] = (1.0, 1.0)
    flip: bool = True
    expand_ratio: float = 0.0
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_ctx", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"text_prompts.{name} must be >= 1, got {getattr(self, name)}")
        if self.samples_per_class is not None and int(self.samples_per_class) < 1:
            raise ValueError(f"text_prompts.samples_per_class must be null or >= 1, got {self.samples_per_class}")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1 or self.warmup_steps < 0:
            raise ValueError("text_prompts: need lr > 0, weight_decay >= 0, 0 <= momentum < 1, warmup_steps >= 0")
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"text_prompts.crop_scale must be [low, high] within (0, 1], got {list(self.crop_scale)}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"text_prompts.crop_ratio must be [low, high] with 0 < low <= high, got {self.crop_ratio}")
        if self.expand_ratio < 0:
            raise ValueError(f"text_prompts.expand_ratio must be >= 0, got {self.expand_ratio}")

    @classmethod
    def from_params(cls, params: dict) -> TextPromptConfig:
        return config_from_params(cls, params, what="text_prompts")

    def run_key(self, data_digest: str) -> str:
        return run_key({**asdict(self), "num_workers": None, "data": data_digest})


def sample_per_class(pairs: Sequence[MaskPair], limit: int | None, seed: int) -> list[MaskPair]:
    """At most ``limit`` pairs of each noun, drawn with ``seed``; the kept pairs stay in their input order."""
    if limit is None:
        return list(pairs)
    by_noun: dict[str, list[int]] = {}
    for row, pair in enumerate(pairs):
        by_noun.setdefault(pair.noun, []).append(row)
    rng = np.random.default_rng([seed, 11])
    keep: list[int] = []
    for noun in sorted(by_noun):
        rows = by_noun[noun]
        keep.extend(rows if len(rows) <= limit else rng.choice(rows, size=limit, replace=False).tolist())
    return [pairs[row] for row in sorted(keep)]


def class_nouns(pairs: Sequence[MaskPair], class_names: Sequence[str], ranks: Ranks, desc: str) -> list[str]:
    """The display names of ``class_names``, checked: distinct, covering every pair's noun, at least one a process."""
    if len(class_names) < ranks.world_size:
        raise ValueError(f"{desc}: {len(class_names)} classes for {ranks.world_size} processes (each embeds some)")
    nouns = [display_name(name) for name in class_names]
    if len(set(nouns)) != len(nouns):
        raise ValueError(f"{desc}: two classes share a display name in {list(class_names)}")
    unknown = sorted({p.noun for p in pairs} - set(nouns))
    if unknown:
        raise ValueError(f"{desc}: pairs name classes outside the class list: {unknown}")
    return nouns


def prompt_training_pairs(
    pairs: Sequence[MaskPair], class_names: Sequence[str], cfg: TextPromptConfig, ranks: Ranks, desc: str
) -> tuple[list[str], list[MaskPair]]:
    """The nouns of ``pairs`` among ``class_names`` and the pairs sampled per class, at least one batch of them."""
    shard_bounds(cfg.batch_size, ranks)  # refuses a batch that does not split evenly
    nouns = class_nouns(pairs, class_names, ranks, desc)
    pairs = sample_per_class(pairs, cfg.samples_per_class, cfg.seed)
    if len(pairs) < cfg.batch_size:
        raise ValueError(f"{desc}: {len(pairs)} pairs, fewer than one batch of {cfg.batch_size}")
    return nouns, pairs


def text_prompt_loop(
    model: torch.nn.Module,
    prompts: TextPrompts,
    params: list[torch.nn.Parameter],
    pairs: Sequence[MaskPair],
    class_names: Sequence[str],
    cfg: TextPromptConfig,
    *,
    checkpoint_dir: str | Path,
    desc: str,
) -> TrainingLoop:
    """The SGD loop over ``prompts``, its run keyed by the pairs, the classes and the CLIP."""
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    digest = hashlib.sha256(
        f"{pairs_digest(pairs)}\n{list(class_names)}\n{text_fingerprint(model)}\n{clip_fingerprint(model)}".encode()
    ).hexdigest()[:16]
    return TrainingLoop(
        prompts,
        optimizer,
        params=params,
        desc=desc,
        checkpoint_dir=checkpoint_dir,
        run_key=cfg.run_key(digest),
        epochs=cfg.epochs,
        total_steps=cfg.epochs * (len(pairs) // cfg.batch_size),
        warmup_steps=cfg.warmup_steps,
    )


def learn_text_prompts(
    bundle: ClipBundle,
    pairs: Sequence[MaskPair],
    class_names: Sequence[str],
    cfg: TextPromptConfig,
    *,
    checkpoint_dir: str | Path,
    desc: str,
) -> LossLog:
    """Learn ``bundle.text_prompts`` (created here) on masked-crop pairs of ``class_names``, CLIP frozen.

    ``class_names`` are the classes of the cross-entropy (``"name, synonym, ..."``); each
    pair's noun must be one of their display names. Returns the loss log (loss and batch accuracy per step).
    Under torchrun each process takes its part of every batch (batch_size / processes) and of the classes.
    """
    ranks = current()
    nouns, pairs = prompt_training_pairs(pairs, class_names, cfg, ranks, desc)
    device, model = bundle.device, bundle.model
    generator = torch.Generator().manual_seed(cfg.seed)
    prompts = bundle.text_prompts = TextPrompts.for_clip(model, cfg.n_ctx, generator=generator)
    params = freeze_clip_for_text_prompts(model, prompts)
    scale = CLIP_LOGIT_SCALE
    loop = text_prompt_loop(model, prompts, params, pairs, class_names, cfg, checkpoint_dir=checkpoint_dir, desc=desc)
    all_crops, _, all_labels, all_valid = cut_pair_crops(bundle, pairs, nouns, cfg.expand_ratio, cfg.num_workers)
    first, last = shard_bounds(len(class_names), ranks, even=False)  # the classes this process embeds
    local_classes = class_names[first:last]

    def losses(epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        augment = torch.Generator().manual_seed(epoch_seed(cfg.seed + 1, epoch))
        for batch in epoch_batches(len(pairs), cfg.batch_size, cfg.seed, epoch):
            rows, local, start = valid_rows(batch, all_valid, ranks)
            crops = random_resized_crops(
                all_crops[local].float(),
                bundle.image_size,
                cfg.crop_scale,
                augment,
                flip=cfg.flip,
                part_of=(start, len(rows)),
                ratio=cfg.crop_ratio,
            )
            labels = all_labels[rows].to(device)
            with torch.no_grad():
                image = gather_rows(bundle.encode_image(crops.to(device)))
            # the whole batch's loss on every process; the gradient reaches the context through its own classes
            text = gather_rows(prompted_class_embeddings(model, bundle.tokenizer, prompts, local_classes))
            logits = scale * image @ text.T
            accuracy = (logits.argmax(dim=1) == labels).float().mean()
            yield {"loss": F.cross_entropy(logits, labels), "accuracy": accuracy}

    log = loop.run(losses)
    prompts.requires_grad_(False)
    model.requires_grad_(True)
    return log
