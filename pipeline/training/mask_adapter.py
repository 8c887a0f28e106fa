"""Training the Mask-Adapter on the seen classes, CLIP and proposer frozen (the paper's two phases, one run).

* **Ground-truth warm-up** (``warmup_epochs``): each image contributes at most
  ``max_gt_masks`` of its ground-truth segments (one per thing instance and stuff class where
  the world has instances, as the reference's panoptic targets, else one per seen class
  present; drawn at random), cross-entropy over the seen class names plus the learned void.
* **Mixed masks** (``mixed_epochs``): per image, ``mixed_gt_masks`` ground-truth
  segments, plus up to ``matched_masks`` proposals of the frozen proposer that match a
  ground-truth segment at IoU > ``match_iou`` (the proposals binarised at ``match_threshold``
  for the IoU; one of a segment's matches drawn at random, fed to the adapter binarised at
  ``mask_threshold``), plus those segments again. Loss:
  ``ce_weight · CE + consistency_weight · (1 − cos(e_proposal, e_segment))`` with the
  segment's embedding detached — the mask consistency loss, which pulls a proposal's
  embedding toward that of the segment it approximates; averaged over ``matched_masks``
  slots per image, unmatched slots counting with loss 0 (:func:`adapter_losses`).

The frozen CLIP's pass over every training image and the proposer's matches are
computed once before the first epoch (:func:`prepare_data`; without augmentation they
never change) and each step runs only the adapter and the pooling. With ``augment``
(large-scale jitter and flips, :func:`augment_rows`, drawn from ``(seed, epoch)``) every
batch is prepared anew from its augmented images (:class:`StreamingData`). A set too large to
keep prepared (COCO) is prepared batch by batch instead (:class:`StreamingData`), the
same computation on the fly. Mask draws come from ``(seed, epoch)``,
the batch order from :func:`epoch_batches`: a resumed run ends with the same weights.
One AdamW run with warm-up and cosine spans both phases; gradients are clipped. The
adapter and the pooling run under autocast (``precision``, as the proposer's trainer).

Under torchrun (:mod:`pipeline.training.distributed`) each process takes its part of every
batch (a streamed set prepares only those rows); the mask draws are made for the whole
batch from its layout (how many segments and matches each image has, gathered from every
process) and sliced, the losses' normalisers (masks, consistency slots) are summed across
processes and so are the gradients, so P processes train like one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from core.params import config_from_params
from core.progress import progress
from model.dense_clip import DenseClip, DenseImage
from model.mask_adapter import MaskAdapter
from model.masks import mask_iou
from model.oracle import gt_segments
from model.precision import PRECISIONS, Precision, autocast_context
from model.proposer import MaskProposer, propose
from pipeline.training.augment import augment_batch
from pipeline.training.autocast_loop import autocast_adamw_loop
from pipeline.training.checkpoint import run_key
from pipeline.training.data_order import epoch_batches, epoch_seed
from pipeline.training.distributed import current, gather_rows, shard_bounds, sum_across
from pipeline.training.instances import instance_segments
from pipeline.training.loss_log import LossLog


@dataclass(frozen=True)
class AdapterTrainConfig:
    warmup_epochs: int = 4
    mixed_epochs: int = 4
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.05
    warmup_steps: int = 20
    grad_clip: float = 1.0
    max_gt_masks: int = 32
    mixed_gt_masks: int = 16
    matched_masks: int = 8
    match_iou: float = 0.7
    match_threshold: float = 0.4
    mask_threshold: float = 0.5
    ce_weight: float = 2.0
    consistency_weight: float = 5.0
    precision: Precision = "auto"
    seed: int = 0
    augment: bool = False
    scale_range: tuple[float, float] = (0.1, 2.0)
    hflip: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale_range", tuple(float(s) for s in self.scale_range))
        checks = [
            (
                self.warmup_epochs >= 0 and self.mixed_epochs >= 0 and self.warmup_epochs + self.mixed_epochs >= 1,
                "warmup_epochs and mixed_epochs must be >= 0, and train at least one epoch together",
            ),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (min(self.max_gt_masks, self.mixed_gt_masks) >= 1, "max_gt_masks and mixed_gt_masks must be >= 1"),
            (self.matched_masks >= 0, f"matched_masks must be >= 0, got {self.matched_masks}"),
            (
                all(0 <= value < 1 for value in (self.match_iou, self.match_threshold, self.mask_threshold)),
                "match_iou, match_threshold and mask_threshold lie in [0, 1)",
            ),
            (self.ce_weight >= 0 and self.consistency_weight >= 0, "loss weights must be >= 0"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
            (
                len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1],
                f"scale_range must be [low, high] with 0 < low <= high, got {list(self.scale_range)}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"mask_adapter: {message}")

    @classmethod
    def from_params(cls, params: dict) -> AdapterTrainConfig:
        return config_from_params(cls, params, what="mask_adapter")

    @property
    def epochs(self) -> int:
        return self.warmup_epochs + self.mixed_epochs


@dataclass
class AdapterData:
    """What training reads of some images: the CLIP pass, the segments and the proposals matched to them.

    Masks are kept at 4× the grid (the adapter's mask input size). ``candidates[i][g]``:
    the binarised proposals ``[P, 4h, 4w]`` of image ``i`` matching its segment ``g``.
    """

    dense: DenseImage
    projected: torch.Tensor
    segment_masks: list[torch.Tensor]
    segment_labels: list[torch.Tensor]
    candidates: list[list[torch.Tensor]]

    def __len__(self) -> int:
        return len(self.segment_masks)

    def batch(self, indices: Sequence[int], *, mixed: bool = True, **_: object) -> AdapterData:
        """The rows at ``indices``, in that order (``mixed``: as :meth:`StreamingData.batch`; prepared rows
        keep their candidates and are never augmented)."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        pick = [int(i) for i in indices]
        return AdapterData(
            self.dense.select(index),
            self.projected[index],
            [self.segment_masks[i] for i in pick],
            [self.segment_labels[i] for i in pick],
            [self.candidates[i] for i in pick],
        )

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for masks, labels in zip(self.segment_masks, self.segment_labels):
            digest.update(masks.numpy().tobytes())
            digest.update(labels.numpy().tobytes())
        digest.update(str([[len(c) for c in per] for per in self.candidates]).encode())
        return digest.hexdigest()[:16]


class TrainingImages(Protocol):
    """What :class:`pipeline.training.proposer.TrainingSet` and ``StreamingTrainingSet`` give (a batch's images and
    labels), and :class:`pipeline.training.instances.WithInstances` (also their instance-id maps)."""

    def __len__(self) -> int: ...

    def fingerprint(self) -> str: ...

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, ...]: ...


@dataclass
class BatchPreparer:
    """Turns a batch of decoded training images into :class:`AdapterData` with the frozen models.

    ``text_emb``: the seen class names as the proposer's text tower embeds them (the
    proposer runs only when the mixed phase does).
    """

    dense_clip: DenseClip
    mean: torch.Tensor
    std: torch.Tensor
    proposer: MaskProposer | None
    text_emb: torch.Tensor
    cfg: AdapterTrainConfig

    @torch.no_grad()
    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, instances: torch.Tensor | None = None, *, mixed: bool = True
    ) -> AdapterData:
        """``images [B, 3, H, W]`` uint8 and ``labels [B, H, W]`` (-1 ignore) → their :class:`AdapterData` (CPU);
        ``instances [B, H, W]``: instance-id maps (:mod:`pipeline.training.instances`), one segment per thing
        instance (else one per class); ``mixed=False`` (a ground-truth epoch) skips the proposer: no proposal
        candidates."""
        device = self.mean.device
        batch = images.to(device).float()
        batch = batch / 255 if images.dtype == torch.uint8 else batch  # augmented batches are floats in 0..1
        height, width = batch.shape[-2:]
        size = self.dense_clip.input_size(height, width)
        x = F.interpolate(batch, size=size, mode="bilinear", align_corners=False) if size != (height, width) else batch
        dense = self.dense_clip.encode((x - self.mean[:, None, None]) / self.std[:, None, None])
        projected = self.dense_clip.projected(dense)
        grid = dense.grid
        proposals = None
        if mixed and self.proposer is not None and self.cfg.mixed_epochs > 0:
            proposals = propose(self.proposer, batch, self.text_emb).mask_probs
        segment_masks, segment_labels, candidates = [], [], []
        for i in range(batch.shape[0]):
            label = labels[i].to(device)
            classes, masks = gt_segments(label) if instances is None else instance_segments(label, instances[i])
            segment_labels.append(classes.cpu())
            segment_masks.append(adapter_masks(masks, grid).cpu())
            per_segment = [torch.empty(0, 4 * grid[0], 4 * grid[1]) for _ in range(len(classes))]
            if proposals is not None and len(classes):
                matches = matched_proposals(proposals[i], masks, self.cfg)
                per_segment = [adapter_masks(m, grid).cpu() for m in matches]
            candidates.append(per_segment)
        cpu = DenseImage(dense.features.cpu(), [state.cpu() for state in dense.states])
        return AdapterData(cpu, projected.cpu(), segment_masks, segment_labels, candidates)


def matched_proposals(mask_probs: torch.Tensor, segments: torch.Tensor, cfg: AdapterTrainConfig) -> list[torch.Tensor]:
    """Per segment of ``segments [G, H, W]`` (bool), the proposals of ``mask_probs [Q, H, W]`` that match it, as the
    adapter's input ``[P, H, W]`` (0/1).

    Two thresholds, as the reference (``fcclip/fcclip.py``): the IoU > ``match_iou`` is taken on the proposals
    binarised at sigmoid >= ``match_threshold`` (0.4, ``compute_mask_iou``); a match is fed to the adapter binarised
    at > ``mask_threshold`` (0.5, ``MASK_ADAPTER.MASK_THRESHOLD``), as at inference.
    """
    iou = mask_iou(mask_probs >= cfg.match_threshold, segments)
    binary = (mask_probs > cfg.mask_threshold).float()
    return [binary[torch.nonzero(iou[:, g] > cfg.match_iou).flatten()] for g in range(segments.shape[0])]


def prepare_data(images: TrainingImages, prepare: BatchPreparer, batch_size: int = 32) -> AdapterData:
    """Every training image prepared once, in order (for sets that fit in memory)."""
    parts = [
        prepare(*images.batch(range(start, min(start + batch_size, len(images)))))
        for start in progress(range(0, len(images), batch_size), desc="mask_adapter: CLIP pass and matches")
    ]
    dense = DenseImage(
        torch.cat([p.dense.features for p in parts]),
        [torch.cat(column) for column in zip(*(p.dense.states for p in parts))],
    )
    return AdapterData(
        dense,
        torch.cat([p.projected for p in parts]),
        [m for p in parts for m in p.segment_masks],
        [c for p in parts for c in p.segment_labels],
        [c for p in parts for c in p.candidates],
    )


@dataclass
class StreamingData:
    """Training images prepared batch by batch, on the fly (for sets too large to keep prepared, and for
    augmented training: the frozen CLIP's pass and the matches are recomputed for every draw)."""

    images: TrainingImages
    prepare: BatchPreparer

    def __len__(self) -> int:
        return len(self.images)

    def batch(
        self,
        indices: Sequence[int],
        *,
        mixed: bool = True,
        generator: torch.Generator | None = None,
        part_of: tuple[int, int] | None = None,
    ) -> AdapterData:
        """The rows at ``indices``, prepared now; ``mixed=False`` (a ground-truth epoch, whose draws take no
        proposals) without running the proposer: ~370 PFLOP of the recipe's 20 warm-up epochs. With the
        recipe's ``augment`` and a ``generator``, the rows are augmented first (:func:`augment_rows`; ``part_of``:
        these rows' place in a batch split across processes)."""
        images, labels, *instances = self.images.batch(indices)
        if self.prepare.cfg.augment and generator is not None:
            fill = tuple(float(v) for v in self.prepare.mean.cpu())
            images, labels, instances = augment_rows(
                images, labels, instances[0] if instances else None, generator, self.prepare.cfg, fill, part_of
            )
        return self.prepare(images, labels, *instances, mixed=mixed)

    def fingerprint(self) -> str:
        return self.images.fingerprint()


def augment_rows(
    images: torch.Tensor,
    labels: torch.Tensor,
    instances: torch.Tensor | None,
    generator: torch.Generator,
    cfg: AdapterTrainConfig,
    fill: Sequence[float],
    part_of: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Large-scale jitter and flips, as the reference's warm-up (``INPUT.MIN_SCALE`` 0.1, ``MAX_SCALE`` 2.0, a
    random flip): each image zoomed by ``s ~ U(scale_range)``, a window of its size cropped from it (or the image
    padded with ``fill``, labels with ignore), mirrored with probability ½ when ``hflip``
    (:func:`pipeline.training.augment.augment_batch`). The instance-id maps get the same warp (the generator's
    state replayed), outside pixels id 0. Returns float images in 0..1, labels, and ``[ids]`` or ``[]``."""
    state = generator.get_state()
    warp = {"scale_range": cfg.scale_range, "hflip": cfg.hflip, "fill": fill, "part_of": part_of}
    images_out, labels_out = augment_batch(images, labels, generator, **warp)  # type: ignore[arg-type]
    if instances is None:
        return images_out, labels_out, []
    replay = torch.Generator()
    replay.set_state(state)
    _, ids = augment_batch(images, instances, replay, **warp)  # type: ignore[arg-type]
    return images_out, labels_out, [ids.clamp_min(0)]


def adapter_masks(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Masks ``[M, H, W]`` resized (bilinear) to 4× the grid, as the adapter resizes them."""
    if masks.shape[0] == 0:
        return torch.empty(0, 4 * grid[0], 4 * grid[1])
    return F.interpolate(masks[:, None].float(), size=(4 * grid[0], 4 * grid[1]), mode="bilinear", align_corners=False)[
        :, 0
    ]


@dataclass
class MaskBatch:
    """A step's masks, padded per image: ``masks [B, M, 4h, 4w]``, ``labels [B, M]`` (-1 padding) and the
    consistency pairs as flat indices into ``B·M`` (``proposal`` and ``segment``)."""

    masks: torch.Tensor
    labels: torch.Tensor
    proposal: torch.Tensor
    segment: torch.Tensor


def mask_layout(data: AdapterData) -> list[list[int]]:
    """Per image of ``data``, the number of matched proposals of each of its segments: all that the draws of
    :func:`draw_masks` depend on."""
    return [[len(c) for c in per_image] for per_image in data.candidates]


def batch_layout(data: AdapterData, device: torch.device | None = None) -> list[list[int]]:
    """The :func:`mask_layout` of the whole batch of which ``data`` holds this process's rows: every process's
    rows in rank order (``gather_rows``); without a process group, that of ``data``."""
    local = mask_layout(data)
    if not current().active:
        return local
    # one flat row per process: each image's segment count, then its segments' match counts
    flat = gather_rows(
        torch.tensor([n for counts in local for n in (len(counts), *counts)], dtype=torch.long, device=device)
    ).tolist()
    layout, at = [], 0
    while at < len(flat):
        layout.append(flat[at + 1 : at + 1 + flat[at]])
        at += 1 + flat[at]
    return layout


def _draw(
    counts: list[int], mixed: bool, cfg: AdapterTrainConfig, rng: np.random.Generator
) -> tuple[np.ndarray, list[int], list[int]]:
    """One image's draws from its ``counts`` (:func:`mask_layout`): the segments taken, the matched segments
    and the proposal picked for each."""
    take = rng.permutation(len(counts))[: cfg.mixed_gt_masks if mixed else cfg.max_gt_masks]
    matched, picks = [], []
    if mixed and cfg.matched_masks > 0:
        matched = [g for g in range(len(counts)) if counts[g]]
        if len(matched) > cfg.matched_masks:
            matched = sorted(rng.choice(matched, size=cfg.matched_masks, replace=False).tolist())
        picks = [int(rng.integers(counts[g])) for g in matched]
    return take, matched, picks


def draw_masks(
    data: AdapterData,
    mixed: bool,
    cfg: AdapterTrainConfig,
    rng: np.random.Generator,
    *,
    layout: list[list[int]] | None = None,
    part_of: tuple[int, int] | None = None,
) -> MaskBatch:
    """The masks of one step over the images of ``data`` (see the module docstring), drawn with ``rng``.

    With ``part_of=(start, total)`` the images of ``data`` are rows ``start:start+len(data)`` of a batch of
    ``total`` split across processes, whose ``layout`` (:func:`batch_layout`) is given: the draws are made for
    the whole batch, these rows take theirs, padded to the whole batch's mask count.
    """
    start, total = (0, len(data)) if part_of is None else part_of
    layout = mask_layout(data) if layout is None else layout
    if len(layout) != total or not 0 <= start <= start + len(data) <= total:
        raise ValueError(f"rows {start}..{start + len(data)} of a batch of {total} with {len(layout)} layouts")
    draws = [_draw(counts, mixed, cfg, rng) for counts in layout]
    width = max(1, *(len(take) + 2 * len(matched) for take, matched, _ in draws))
    per_image: list[tuple[list[torch.Tensor], list[int], list[tuple[int, int]]]] = []
    for i, (take, matched, picks) in enumerate(draws[start : start + len(data)]):
        segments, segment_labels = data.segment_masks[i], data.segment_labels[i].tolist()
        image_masks = [segments[g] for g in take]
        mask_labels = [segment_labels[g] for g in take]
        pairs = []
        if matched:
            first = len(image_masks)
            image_masks += [data.candidates[i][g][pick] for g, pick in zip(matched, picks)]
            image_masks += [segments[g] for g in matched]
            mask_labels += [segment_labels[g] for g in matched] * 2
            pairs = [(first + j, first + len(matched) + j) for j in range(len(matched))]
        per_image.append((image_masks, mask_labels, pairs))
    shape = data.segment_masks[0].shape[-2:]
    masks = torch.zeros(len(data), width, *shape)
    labels = torch.full((len(data), width), -1, dtype=torch.long)
    proposal, segment = [], []
    for b, (image_masks, image_labels, pairs) in enumerate(per_image):
        if image_masks:
            masks[b, : len(image_masks)] = torch.stack(image_masks)
            labels[b, : len(image_labels)] = torch.tensor(image_labels)
        proposal += [b * width + p for p, _ in pairs]
        segment += [b * width + s for _, s in pairs]
    return MaskBatch(masks, labels, torch.tensor(proposal, dtype=torch.long), torch.tensor(segment, dtype=torch.long))


def adapter_losses(
    embeddings: torch.Tensor,
    step: MaskBatch,
    classifier: torch.Tensor,
    scale: torch.Tensor,
    cfg: AdapterTrainConfig,
    sum_across: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """``ce``, ``consistency`` and their weighted ``loss`` for embeddings ``[B, M, D]``; ``classifier [C+1, D]``.

    The consistency term is the reference's ``1 − cos.mean()`` over ``matched_masks`` slots per image
    (``fcclip/fcclip.py`` ``cosine_similarity_loss``): a slot without a match holds two empty masks, whose
    embeddings agree (loss 0), and still counts in the mean. Its pull therefore grows with the matches found,
    instead of being a mean over the real pairs (which, at ~2 matches an image, is ~4× the reference's).

    A batch split across processes passes ``sum_across`` (a tensor's sum over the processes): the terms are
    then this process's share of the whole batch's (its sums over the batch's numbers of masks and of slots).
    """
    flat = F.normalize(embeddings.flatten(0, 1), dim=-1)
    labels = step.labels.flatten().to(flat.device)
    logits = scale * flat @ F.normalize(classifier, dim=-1).T
    valid = labels >= 0
    # the consistency pairs: each proposal's embedding against its segment's, the segment's detached
    cos = (flat[step.proposal.to(flat.device)] * flat[step.segment.to(flat.device)].detach()).sum(-1)
    slots = torch.tensor(embeddings.shape[0] * cfg.matched_masks, device=flat.device)
    if sum_across is not None:
        counts = sum_across(torch.stack([valid.sum(), slots]))
        num_masks, num_slots = counts.clamp_min(1).to(flat.dtype)
        ce = F.cross_entropy(logits[valid], labels[valid], reduction="sum") / num_masks
    else:
        ce = F.cross_entropy(logits[valid], labels[valid]) if bool(valid.any()) else flat.sum() * 0
        num_slots = slots.clamp_min(1).to(flat.dtype)
    consistency = (1 - cos).sum() / num_slots if step.proposal.numel() else flat.sum() * 0
    loss = cfg.ce_weight * ce + cfg.consistency_weight * consistency
    return {"loss": loss, "ce": ce, "consistency": consistency}


def train_adapter(
    adapter: MaskAdapter,
    dense_clip: DenseClip,
    data: AdapterData | StreamingData,
    text_emb: torch.Tensor,
    logit_scale: float,
    cfg: AdapterTrainConfig,
    *,
    checkpoint_dir: str | Path,
    identity: str,
    desc: str = "mask_adapter",
    after_epoch: Callable[[int], None] | None = None,
) -> LossLog:
    """Train ``adapter`` in place on ``data`` (classes: the rows of ``text_emb``, as the CLIP embeds them);
    returns the loss log. ``after_epoch``: see :meth:`pipeline.training.loop.TrainingLoop.run` (the validation
    gauge of the stage).

    ``identity`` names what the run depends on besides ``cfg`` and the data (the CLIP,
    the adapter's architecture): checkpoints of another identity are not resumed.
    Under torchrun each process takes its part of every batch (batch_size / processes).
    """
    ranks = current()
    shard_bounds(cfg.batch_size, ranks)  # refuses a batch that does not split evenly
    if len(data) < cfg.batch_size:
        raise ValueError(f"{desc}: {len(data)} training images, fewer than one batch of {cfg.batch_size}")
    if cfg.augment and not isinstance(data, StreamingData):
        raise ValueError(f"{desc}: augment needs the data prepared per batch (StreamingData), not prepared once")
    device = text_emb.device
    adapter.to(device)
    for p in dense_clip.parameters():
        p.requires_grad_(False)
    loop, dtype = autocast_adamw_loop(
        adapter,
        cfg,
        no_decay=("void", "gamma"),
        num_samples=len(data),
        run_key=run_key({**asdict(cfg), "data": data.fingerprint(), "identity": identity}),
        device=device,
        checkpoint_dir=checkpoint_dir,
        desc=desc,
    )
    scale = torch.tensor(float(logit_scale), device=device)

    def losses(epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        mixed = epoch >= cfg.warmup_epochs
        rng = np.random.default_rng(epoch_seed(cfg.seed + 1, epoch))
        generator = torch.Generator().manual_seed(epoch_seed(cfg.seed + 2, epoch))  # the augmentation's draws
        for batch in epoch_batches(len(data), cfg.batch_size, cfg.seed, epoch):
            start, stop = shard_bounds(len(batch), ranks)  # this process's part of the batch
            rows = data.batch(batch[start:stop], mixed=mixed, generator=generator, part_of=(start, len(batch)))
            masks = draw_masks(rows, mixed, cfg, rng, layout=batch_layout(rows, device), part_of=(start, len(batch)))
            dense = DenseImage(rows.dense.features.to(device), [s.to(device) for s in rows.dense.states])
            classifier = torch.cat([text_emb, adapter.void[None]])
            with autocast_context(device, dtype):
                embeddings = adapter.embed(dense_clip, dense, masks.masks.to(device), rows.projected.to(device))
            # under several processes the terms are this one's share
            yield adapter_losses(
                embeddings.float(), masks, classifier, scale, cfg, sum_across if ranks.active else None
            )

    return loop.run(losses, after_epoch=after_epoch)
