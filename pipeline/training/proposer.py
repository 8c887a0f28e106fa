"""Training the mask proposer on the seen classes' semantic labels (MaskFormer's recipe, small).

Every training image and its label map are decoded once and kept in memory
(:class:`TrainingSet`; a set too large for that, such as COCO-Stuff, is decoded
batch by batch by :class:`StreamingTrainingSet`); each batch is augmented on the
fly with one ``grid_sample`` call (random zoom, crop and horizontal flip), turned into one target mask per class
present (:func:`semantic_targets`)
and scored against the fixed text embeddings of the seen class names. The loss
is :class:`SetCriterion` (Hungarian matching; cross-entropy with a down-weighted
"no object", focal and dice mask losses, deep supervision), optimised with AdamW
under a per-step warm-up + cosine schedule, optionally in mixed precision.

The augmentation of an epoch is drawn from ``(seed, epoch)`` alone and the batch
order from :func:`epoch_batches`, so a run resumed from an end-of-epoch
checkpoint produces the same weights as an uninterrupted one.

Under torchrun (:mod:`pipeline.training.distributed`) each process takes its part of
every batch, with the augmentation drawn for the whole batch; the criterion's
normalisers (target masks, cross-entropy weights) are summed across processes and so are
the gradients, so P processes train like one on the same global batch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.params import config_from_params
from model.precision import PRECISIONS, Precision, autocast_context
from model.proposer import MaskProposer, SetCriterion, config_to_dict, semantic_targets
from pipeline.datasets.segmentation import SegmentationDataset
from pipeline.training.augment import augment_batch
from pipeline.training.autocast_loop import autocast_adamw_loop
from pipeline.training.checkpoint import run_key
from pipeline.training.data_order import epoch_batches, epoch_seed
from pipeline.training.distributed import current, local_batch_size, shard_bounds, sum_across
from pipeline.training.loss_log import LossLog


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ProposerTrainConfig:
    """The optimisation recipe (the architecture and loss weights live in the proposer config).

    ``scale_range``: each training image is zoomed by a factor drawn uniformly from
    it (``> 1`` crops a random window, ``< 1`` shrinks the image and pads with
    ignore), then flipped left-right with probability 0.5 when ``hflip``.
    ``crop_size``: side of the square training crops (default: the image size);
    smaller crops make a step cheaper.
    ``grad_clip``: maximum global gradient norm (0 disables clipping).
    ``precision``: autocast dtype; ``auto`` is bf16 on CUDA devices and CPUs with
    native bf16, fp16 on other CUDA devices (with loss scaling) and fp32 elsewhere.
    """

    epochs: int = 6
    batch_size: int = 16
    lr: float = 1.4e-3
    weight_decay: float = 0.05
    warmup_steps: int = 60
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    scale_range: tuple[float, float] = (0.75, 1.25)
    crop_size: int | None = None
    hflip: bool = True
    precision: Precision = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale_range", tuple(float(s) for s in self.scale_range))
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}"),
            (0 <= self.min_lr_ratio <= 1, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}"),
            (self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}"),
            (
                len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1],
                f"scale_range must be [low, high] with 0 < low <= high, got {list(self.scale_range)}",
            ),
            (self.crop_size is None or self.crop_size >= 1, f"crop_size must be positive, got {self.crop_size}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ProposerTrainConfig:
        return config_from_params(cls, params, what="proposer.train")


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class TrainingSet:
    """Decoded training data: ``images [N,H,W,3]`` uint8 and ``labels [N,H,W]`` int16 (-1 ignore)."""

    keys: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.keys)
        if self.images.ndim != 4 or self.images.shape[0] != n or self.images.shape[-1] != 3:
            raise ValueError(f"images must be [{n}, H, W, 3], got {list(self.images.shape)}")
        if self.labels.shape != self.images.shape[:3]:
            raise ValueError(f"labels {list(self.labels.shape)} do not match images {list(self.images.shape)}")

    def __len__(self) -> int:
        return len(self.keys)

    def fingerprint(self) -> str:
        """A hash of the keys, pixels and labels (part of a training run's identity)."""
        digest = hashlib.sha256()
        digest.update(json.dumps(list(self.keys)).encode())
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        return digest.hexdigest()[:16]

    def max_label(self) -> int:
        return int(self.labels.max())

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images [B,3,H,W] uint8, labels [B,H,W] int64)`` of the given rows, on the CPU."""
        index = np.asarray(indices, dtype=np.int64)
        images = torch.from_numpy(self.images[index]).permute(0, 3, 1, 2).contiguous()
        return images, torch.from_numpy(self.labels[index].astype(np.int64))


class StreamingTrainingSet:
    """Training data decoded batch by batch from ``dataset`` (for sets too large for memory).

    Every sample is resized to ``image_size × image_size`` (image bilinear, labels
    nearest). The fingerprint covers the dataset's name, classes and keys and the
    size, not the pixels (hashing a real dataset would mean reading all of it).
    """

    def __init__(self, dataset: SegmentationDataset, image_size: int, *, threads: int = 4, limit: int | None = None):
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.dataset = dataset
        self.image_size = int(image_size)
        self.keys = tuple(dataset.keys()[:limit] if limit is not None else dataset.keys())
        if not self.keys:
            raise ValueError(f"{dataset.name}: no training samples")
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads))

    def __len__(self) -> int:
        return len(self.keys)

    def fingerprint(self) -> str:
        payload = [self.dataset.name, list(self.dataset.class_names), list(self.keys), self.image_size]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]

    def max_label(self) -> None:
        """Unknown without reading everything: the criterion checks every batch instead."""
        return None

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        def one(i: int) -> tuple[np.ndarray, np.ndarray]:
            sample = self.dataset.load(self.keys[i])
            if sample.image.shape[:2] != (self.image_size, self.image_size):
                return _resize_pair(sample.image, sample.label, self.image_size)
            return sample.image, sample.label

        pairs = list(self._pool.map(one, indices))
        images = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).contiguous()
        return images, torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64))


def load_training_set(
    dataset: SegmentationDataset, *, image_size: int | None = None, threads: int = 2, limit: int | None = None
) -> TrainingSet:
    """Decode every sample of ``dataset`` (sorted keys, the first ``limit`` when given).

    Without ``image_size`` all samples must share one size (an error names the first
    that does not); with it, each is resized to ``image_size × image_size``
    (image bilinear, labels nearest). Class indices must fit int16.
    """
    keys = dataset.keys()[:limit] if limit is not None else dataset.keys()
    if not keys:
        raise ValueError(f"{dataset.name}: no training samples")
    if len(dataset.class_names) > np.iinfo(np.int16).max:
        raise ValueError(f"{dataset.name}: {len(dataset.class_names)} classes do not fit int16 labels")

    def one(key: str) -> tuple[np.ndarray, np.ndarray]:
        sample = dataset.load(key)
        image, label = sample.image, sample.label
        if image_size is not None and image.shape[:2] != (image_size, image_size):
            image, label = _resize_pair(image, label, image_size)
        return image, label.astype(np.int16)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        pairs = list(pool.map(one, keys))
    shape = pairs[0][0].shape
    for key, (image, _) in zip(keys, pairs):
        if image.shape != shape:
            raise ValueError(
                f"{dataset.name}/{key}: image size {image.shape[1]}x{image.shape[0]} differs from "
                f"{shape[1]}x{shape[0]} of {keys[0]} (set an image_size to resize)"
            )
    return TrainingSet(tuple(keys), np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))


def _resize_pair(image: np.ndarray, label: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    img = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    lab = torch.from_numpy(label.astype(np.float32))[None, None]
    lab = F.interpolate(lab, size=(size, size), mode="nearest-exact")
    image = img[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return image, lab[0, 0].round().to(torch.int64).numpy()


# ----------------------------------------------------------------------------- training
PROPOSER_NO_DECAY = ("query_feat", "query_pos", "no_object", "log_scale")  # queries and scales are not decayed


def proposer_run_key(cfg: ProposerTrainConfig, model: MaskProposer, data_fingerprint: str, text: torch.Tensor) -> str:
    """Identity of a training run: recipe, architecture, data and text embeddings."""
    text_digest = hashlib.sha256(text.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()
    payload = {
        "train": asdict(cfg),
        "model": config_to_dict(model.config),
        "data": data_fingerprint,
        "text": text_digest[:16],
    }
    return run_key(payload)


def train_proposer(
    model: MaskProposer,
    data: TrainingSet | StreamingTrainingSet,
    text_embeddings: torch.Tensor,
    cfg: ProposerTrainConfig,
    *,
    device: torch.device,
    checkpoint_dir: str | os.PathLike,
    desc: str = "proposer",
) -> LossLog:
    """Train ``model`` in place on ``data`` against the fixed ``text_embeddings [C,D]``.

    ``data`` is a :class:`TrainingSet` (decoded in memory) or a
    :class:`StreamingTrainingSet` (decoded per batch). Label ``i`` of ``data`` is row ``i`` of ``text_embeddings``.
    Checkpoints after
    every epoch but the last in ``checkpoint_dir`` and resumes from the newest one of the same
    run (see :func:`run_key`). Returns the per-step loss log; the model is left in
    eval mode on ``device``. Under torchrun each process trains on its part of every batch.
    """
    ranks = current()
    local_batch_size(cfg.batch_size, ranks.world_size)
    if len(data) < cfg.batch_size:
        raise ValueError(f"need at least batch_size={cfg.batch_size} training images, got {len(data)}")
    max_label = data.max_label()
    if max_label is not None and max_label >= text_embeddings.shape[0]:
        raise ValueError(f"labels reach class {max_label} but only {text_embeddings.shape[0]} text embeddings given")
    model.to(device)
    text = text_embeddings.detach().to(device, torch.float32)
    criterion = SetCriterion(model.config.loss)
    loop, dtype = autocast_adamw_loop(
        model,
        cfg,
        no_decay=PROPOSER_NO_DECAY,
        num_samples=len(data),
        run_key=proposer_run_key(cfg, model, data.fingerprint(), text),
        device=device,
        checkpoint_dir=checkpoint_dir,
        desc=desc,
        min_lr_ratio=cfg.min_lr_ratio,
    )
    fill = tuple(float(v) for v in model.config.pixel_mean)

    def losses(epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        generator = torch.Generator().manual_seed(epoch_seed(cfg.seed + 1, epoch))
        for batch in epoch_batches(len(data), cfg.batch_size, cfg.seed, epoch):
            start, stop = shard_bounds(len(batch), ranks)
            images, labels = data.batch(batch[start:stop])
            images, labels = augment_batch(
                images.to(device),
                labels.to(device),
                generator,
                scale_range=cfg.scale_range,
                hflip=cfg.hflip,
                crop_size=cfg.crop_size,
                fill=fill,
                part_of=(start, len(batch)),
            )
            targets = [semantic_targets(label) for label in labels]
            with autocast_context(device, dtype):
                outputs = model(images, text)
            # the criterion works in float32; under several processes its terms are this one's share
            yield criterion(outputs, targets, sum_across if ranks.active else None)

    return loop.run(losses)
