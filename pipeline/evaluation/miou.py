"""Evaluating one variant on one benchmark: the settings, the loop, the metrics record.

Protocol (the usual open-vocabulary mIoU protocol, see ``model/metrics.py`` for the
conventions): every image of the benchmark (sorted keys, the first ``max_images``
when set) is segmented among *all* the benchmark's class names; predictions and
ground truth are accumulated in one confusion matrix over the whole benchmark;
per-class IoU is TP / (TP + FP + FN) over the benchmark, classes absent from both
the ground truth and the predictions are left out of the means. A benchmark
class is *seen* when one of its names is a name or synonym of a class the
proposer and the adaptation stages saw labelled (the world's seen classes). It is
*unseen*, for ``mIoU_unseen``, when it names a world class without labels; a class
naming no world class is unseen in a real world (whose class list holds only the
training classes) and neither seen nor unseen in the demo world (whose list holds
every class of its images: such a name is a distractor of a wide vocabulary, which
counts in the mIoU when predicted, as any class absent from the ground truth).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from core.classnames import display_names
from core.params import check_fractions, check_keys
from core.progress import progress
from model.dense_clip import POOLINGS
from model.metrics import ConfusionMatrix
from model.precision import Precision, check_inference_precision, inference_autocast, resolve_inference_precision
from model.proposal_segmenter import ProposalSegmenter
from model.proposer import check_max_proposals
from model.proposer.inference import Proposals
from model.scoring import resize_labels
from pipeline.datasets.segmentation import IGNORE, Sample, SegmentationDataset
from pipeline.evaluation.gt_gauge import class_subsets, world_entries
from pipeline.evaluation.variants import Variant

#: The figures of a metrics record, all in percent.
FIGURES = ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "fwIoU", "mACC", "pACC")
#: Keys of the ``evaluate`` section that choose where and how fast it runs, read by the stage itself.
RUNTIME_KEYS = ("device", "threads")
#: Keys of the section that other stages read: the crops stage's benchmark (dvc.yaml passes it).
OTHER_STAGE_KEYS = ("crop_benchmark",)
#: The ``zsseg`` row's protocols per benchmark (:mod:`pipeline.evaluation.zsseg`), read by the stage itself;
#: they set ``zsseg_lam``, which is therefore no key of the section.
PROTOCOL_KEYS = ("zsseg",)


@dataclass(frozen=True)
class EvalConfig:
    """The ``evaluate`` params section, less :data:`RUNTIME_KEYS` (read by the stage itself).

    ``lam``: CLIP's exponent in the ensemble; ``lam_seen``/``lam_unseen``: per-class
    exponents for seen/unseen classes (``None``: ``lam``). ``zsseg_lam``: λ of
    zsseg.baseline's ensemble (CLIP's exponent 1 − λ for seen classes, λ for unseen ones; see
    :func:`model.scoring.zsseg_exponents`), set per benchmark by the ``zsseg`` row's protocol. ``mask_threshold``:
    binarisation of the proposals for the crops (and the oracle). ``expand_ratio``:
    crop box enlargement. ``batch_size``: images per segmenter call;
    ``clip_batch_size``: crops per CLIP forward. ``short_side``: resize images so
    that their shorter side has this length before segmenting (predictions are
    resized back to the label's size, nearest); ``None`` keeps the native size.
    ``max_images``: evaluate the first N images only. ``overlay_images``: how many
    fixed images the overlay picture shows. Mask-Adapter's family (one CLIP pass per
    image): ``alpha``/``beta`` are CLIP's exponents for seen/unseen classes in its
    ensemble; ``adapter_mask_threshold`` binarises the proposals the Mask-Adapter reads (its
    reference's 0.5; ``maskpool`` and the crops read ``mask_threshold``); ``pooling``/``attention_depth``
    configure ``maskpool`` (see
    :class:`model.dense_clip.DenseClip`). ``precision``: ``fp32``, or ``bf16`` autocast around
    every model call of the run (scores, ensembles and argmaxes stay float32), or ``auto`` (bf16 where
    the device computes it natively; a run records what :meth:`resolved` makes of it).
    ``max_proposals``: each image's that many best-scored proposals are classified (``None``: all).
    """

    lam: float = 0.7
    lam_seen: float | None = None
    lam_unseen: float | None = None
    zsseg_lam: float = 0.8
    alpha: float = 0.7
    beta: float = 0.9
    pooling: str = "attention"
    attention_depth: int | None = None
    mask_threshold: float = 0.4
    adapter_mask_threshold: float = 0.5
    expand_ratio: float = 0.0
    batch_size: int = 16
    clip_batch_size: int = 256
    short_side: int | None = None
    max_images: int | None = None
    overlay_images: int = 4
    precision: Precision = "fp32"
    max_proposals: int | None = None

    def __post_init__(self) -> None:
        check_inference_precision(self.precision, "evaluate.precision")
        check_max_proposals(self.max_proposals, "evaluate.max_proposals")
        if self.pooling not in POOLINGS:
            raise ValueError(f"evaluate.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.attention_depth is not None and int(self.attention_depth) < 1:
            raise ValueError(f"evaluate.attention_depth must be null or >= 1, got {self.attention_depth}")
        fractions = ("lam", "lam_seen", "lam_unseen", "zsseg_lam", "alpha", "beta")
        check_fractions(((name, getattr(self, name)) for name in fractions), "evaluate.")
        for name in ("mask_threshold", "adapter_mask_threshold"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"evaluate.{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.expand_ratio < 0:
            raise ValueError(f"evaluate.expand_ratio must be >= 0, got {self.expand_ratio}")
        for name in ("batch_size", "clip_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"evaluate.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("short_side", "max_images"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"evaluate.{name} must be null or >= 1, got {value}")
        if self.overlay_images < 0:
            raise ValueError(f"evaluate.overlay_images must be >= 0, got {self.overlay_images}")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> EvalConfig:
        """Build from the params section; unknown keys (other than :data:`RUNTIME_KEYS`,
        :data:`OTHER_STAGE_KEYS` and :data:`PROTOCOL_KEYS`) are an error."""
        known = {f.name for f in fields(cls)} - {"zsseg_lam"}
        check_keys(params, known | set(RUNTIME_KEYS) | set(OTHER_STAGE_KEYS) | set(PROTOCOL_KEYS), "evaluate")
        return cls(**{k: v for k, v in params.items() if k in known})

    def resolved(self, device: torch.device | str) -> EvalConfig:
        """These settings with ``precision`` resolved on ``device`` (``auto`` becomes fp32 or bf16)."""
        return replace(self, precision=resolve_inference_precision(self.precision, device))

    def provenance(self, ensemble: str = "ovseg") -> dict[str, Any]:
        """The settings that change the figures of a crop-path variant with that ``ensemble``, for the
        metrics record."""
        lams = ("zsseg_lam",) if ensemble == "zsseg" else ("lam", "lam_seen", "lam_unseen")
        keys = (*lams, "mask_threshold", "expand_ratio", "short_side", "max_images", "precision", "max_proposals")
        return {key: getattr(self, key) for key in keys}

    def one_pass_provenance(self) -> dict[str, Any]:
        """:meth:`provenance` for Mask-Adapter's family, whose ensemble and pooling differ."""
        keys = (
            "alpha",
            "beta",
            "pooling",
            "attention_depth",
            "mask_threshold",
            "adapter_mask_threshold",
            "short_side",
            "max_images",
            "precision",
            "max_proposals",
        )
        return {key: getattr(self, key) for key in keys}


@dataclass(frozen=True)
class Example:
    """One image kept for the overlay picture, at its label's size."""

    key: str
    image: np.ndarray
    label: np.ndarray
    prediction: np.ndarray


@dataclass
class EvaluationRun:
    """What :func:`evaluate_benchmark` returns: the accumulated counts and the kept examples."""

    confusion: ConfusionMatrix
    images: int
    examples: list[Example] = field(default_factory=list)
    images_without_proposals: int = 0  # with external proposals: images the file has no mask for


def class_is_seen(class_names: Sequence[str], world_classes: list[dict] | None) -> np.ndarray | None:
    """``[C]`` bool: which benchmark classes are seen (see the module docstring); ``None`` without a class list."""
    subsets = class_subsets(list(class_names), world_classes)
    return subsets.get("seen")


def class_is_unseen(class_names: Sequence[str], world_classes: list[dict] | None, *, closed: bool) -> np.ndarray | None:
    """``[C]`` bool: the classes ``mIoU_unseen`` averages (see the module docstring); ``closed``: the world's
    class list names every class of its images (:attr:`pipeline.datasets.manifest.World.closed_vocabulary`)."""
    seen = class_is_seen(class_names, world_classes)
    if seen is None or world_classes is None:  # (without a class list, seen is None too)
        return None
    if not closed:
        return ~seen
    in_world = np.array([entry is not None for entry in world_entries(list(class_names), world_classes)], np.bool_)
    return in_world & ~seen


def example_keys(keys: Sequence[str], count: int) -> list[str]:
    """``count`` keys spread evenly over ``keys`` (first and last included), in order."""
    if count <= 0 or not keys:
        return []
    if count >= len(keys):
        return list(keys)
    positions = np.linspace(0, len(keys) - 1, count).round().astype(int)
    return [keys[i] for i in sorted(set(positions.tolist()))]


def resize_short_side(image: np.ndarray, short_side: int | None) -> np.ndarray:
    """``H×W×3`` uint8 resized (bicubic) so that ``min(H, W) == short_side``; unchanged when ``None`` or equal."""
    if short_side is None or min(image.shape[:2]) == short_side:
        return image
    height, width = image.shape[:2]
    scale = short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.array(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def resize_label(label: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An ``H×W`` integer label map resized (nearest) to ``shape``; unchanged when equal."""
    if label.shape == tuple(shape):
        return label
    return resize_labels(torch.from_numpy(label), shape).numpy()


#: External proposals by dataset key: bool masks ``[Q, H, W]`` at the image's size and scores ``[Q]``, or ``None``.
ProposalLookup = Callable[[str], tuple[torch.Tensor, torch.Tensor] | None]
#: The proposer's stored outputs by dataset key (one image's :class:`Proposals`, at the segmented size).
StoredLookup = Callable[[str], Proposals]


def benchmark_keys(dataset: SegmentationDataset, settings: EvalConfig) -> list[str]:
    """The keys an evaluation covers: the dataset's sorted keys, the first ``max_images`` when set."""
    return dataset.keys()[: settings.max_images] if settings.max_images else dataset.keys()


def segmented_batches(
    dataset: SegmentationDataset, keys: Sequence[str], settings: EvalConfig, desc: str
) -> Iterator[tuple[list[Sample], list[np.ndarray]]]:
    """``(samples, images as segmented)`` by ``settings.batch_size`` keys, with a progress bar: the batches
    every evaluation and the ``propose`` stage segment (same batches, same proposer bits)."""
    for start in progress(range(0, len(keys), settings.batch_size), desc=desc):
        samples = [dataset.load(key) for key in keys[start : start + settings.batch_size]]
        yield samples, [resize_short_side(s.image, settings.short_side) for s in samples]


@torch.no_grad()
def evaluate_benchmark(
    segmenter: ProposalSegmenter,
    dataset: SegmentationDataset,
    variant: Variant,
    settings: EvalConfig,
    seen: np.ndarray | None = None,
    proposals: ProposalLookup | None = None,
    stored: StoredLookup | None = None,
) -> EvaluationRun:
    """Run ``variant`` over ``dataset`` and accumulate its confusion matrix.

    ``seen`` (``[C]`` bool) selects ``lam_seen``/``lam_unseen`` for the
    two-stage variants. Text embeddings are computed once. Images are segmented
    ``settings.batch_size`` at a time; predictions are compared with the label
    at the label's own size.

    ``proposals`` replaces the proposer of a two-stage variant by given masks
    (:meth:`ProposalSegmenter.segment_with_masks`); an image without masks is
    predicted all -1 and counted in ``images_without_proposals``.

    ``stored`` gives each image's proposer outputs (the ``propose`` stage's file, see
    :mod:`pipeline.evaluation.stored_proposals`) instead of running the proposer: the
    two-stage variants and the oracle give the same labels as with the live proposer.
    Every model call (text embeddings included) runs under ``settings.precision``'s autocast.
    """
    if proposals is not None and stored is not None:
        raise ValueError("external proposals and stored proposer outputs exclude each other")
    if proposals is not None and variant.mode != "two_stage":
        raise ValueError(
            f"variant {variant.name!r} ({variant.mode}) does not classify proposals: "
            "external proposals go with the two-stage variants only"
        )
    with inference_autocast(settings.precision, segmenter.device):
        return _evaluate(segmenter, dataset, variant, settings, seen, proposals, stored)


def _evaluate(
    segmenter: ProposalSegmenter,
    dataset: SegmentationDataset,
    variant: Variant,
    settings: EvalConfig,
    seen: np.ndarray | None,
    proposals: ProposalLookup | None,
    stored: StoredLookup | None,
) -> EvaluationRun:
    names = list(dataset.class_names)
    keys = benchmark_keys(dataset, settings)
    keep = set(example_keys(keys, settings.overlay_images))
    text = segmenter.text_embeddings(names)
    confusion = ConfusionMatrix(len(names), ignore_index=IGNORE)
    run = EvaluationRun(confusion, images=0)
    for samples, images in segmented_batches(dataset, keys, settings, f"evaluate {variant.name}/{dataset.name}"):
        labels = [resize_label(s.label, im.shape[:2]) for s, im in zip(samples, images)]
        given = None if stored is None or variant.mode == "gt_masks" else [stored(s.key) for s in samples]
        if proposals is not None:
            found = segment_with_proposals(segmenter, samples, images, proposals, names, text)
            run.images_without_proposals += sum(p is None for p in found)
            predictions = [np.full(im.shape[:2], IGNORE, np.int32) if p is None else p for p, im in zip(found, images)]
        elif variant.mode == "two_stage":
            predictions = segmenter.segment_batch(images, names, text, seen, given)
        elif variant.mode == "oracle":
            predictions = segmenter.segment_oracle_batch(images, labels, names, text, IGNORE, given)
        elif variant.mode == "gt_masks":
            predictions = segmenter.classify_gt_segments_batch(images, labels, names, text, IGNORE)
        else:
            raise ValueError(f"unknown evaluation mode {variant.mode!r}")
        for sample, segmented in zip(samples, predictions):
            prediction = resize_label(segmented, sample.label.shape)  # at the sample's size, as the example keeps it
            confusion.update(prediction, sample.label)
            run.images += 1
            if sample.key in keep:
                run.examples.append(Example(sample.key, sample.image, sample.label, prediction))
    return run


def segment_with_proposals(
    segmenter: ProposalSegmenter,
    samples: Sequence[Sample],
    images: Sequence[np.ndarray],
    proposals: ProposalLookup,
    names: Sequence[str],
    text: torch.Tensor,
) -> list[np.ndarray | None]:
    """Each image's labels from its external masks (resized, nearest, to the segmented ``images``);
    ``None`` for an image without masks. The masks must have the size of the sample's image."""
    found: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    for i, (sample, image) in enumerate(zip(samples, images)):
        entry = proposals(sample.key)
        if entry is None:
            continue
        masks, scores = entry
        if tuple(masks.shape[1:]) != sample.image.shape[:2]:
            raise ValueError(
                f"the proposals of image {sample.key!r} are {masks.shape[1]}×{masks.shape[2]}, "
                f"the image is {sample.image.shape[0]}×{sample.image.shape[1]}"
            )
        found.append((i, resize_labels(masks, image.shape[:2]), scores))
    labels = segmenter.segment_with_masks_batch(
        [images[i] for i, _, _ in found], [m for _, m, _ in found], [s for _, _, s in found], names, text
    )
    predictions: list[np.ndarray | None] = [None] * len(samples)
    for (i, _, _), label in zip(found, labels):
        predictions[i] = label
    return predictions


def _figure(value: float) -> float | None:
    """Rounded to 2 decimals, NaN (undefined) as ``None`` (JSON has no NaN)."""
    return None if value is None or math.isnan(value) else round(float(value), 2)


def metrics_record(
    run: EvaluationRun,
    class_names: Sequence[str],
    seen: np.ndarray | None,
    *,
    variant: Variant,
    benchmark: str,
    settings: EvalConfig,
    unseen: np.ndarray | None = None,
) -> dict[str, Any]:
    """The JSON written to ``metrics/eval/<variant>/<benchmark>.json``: deterministic values only.

    Keys: the figures in :data:`FIGURES` (percent, ``None`` when undefined),
    ``per_class`` (display name → IoU), counts (``images``, ``pixels``,
    ``classes``, ``classes_seen``, ``classes_unseen``, ``classes_outside_world``,
    ``classes_scored``), the variant's ``mode`` and ``clip`` and the ``settings`` that
    change the figures. ``unseen``: see :func:`class_is_unseen` (default: not ``seen``).
    """
    if seen is not None and unseen is None:
        unseen = ~np.asarray(seen, bool)
    summary = run.confusion.summary(seen, unseen)
    record: dict[str, Any] = {key: _figure(summary.get(key, math.nan)) for key in FIGURES}
    names = display_names(class_names)
    record.update(
        variant=variant.name,
        mode=variant.mode,
        clip=variant.clip_name,
        benchmark=benchmark,
        images=run.images,
        pixels=summary["pixels"],
        classes=len(names),
        classes_seen=None if seen is None else int(np.sum(seen)),
        classes_unseen=None if seen is None or unseen is None else int(np.sum(unseen)),
        classes_outside_world=(
            None if seen is None or unseen is None else int(len(names) - np.sum(seen) - np.sum(unseen))
        ),
        classes_scored=summary["valid_classes"],
        per_class={name: _figure(iou) for name, iou in zip(names, summary["per_class_iou"])},
        settings=(
            settings.provenance(variant.ensemble) if variant.classifier == "crops" else settings.one_pass_provenance()
        ),
    )
    return record
