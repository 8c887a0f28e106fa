"""Zero-shot classification of ground-truth segments by CLIP: the quality gauge of a CLIP.

Every ground-truth segment of a benchmark image (all pixels of one class) is cut out as
a masked crop and classified among all the benchmark's classes. Accuracy is the top-1
accuracy per class, then averaged over classes (so that frequent stuff classes do not
dominate), and over the seen, unseen, thing and stuff subsets when they are known.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from core.progress import progress
from model.clip import ClipBundle
from model.crops import masked_crops
from model.one_pass import OnePassSegmenter
from model.oracle import gt_segments
from model.precision import full_precision
from model.proposal_segmenter import image_to_tensor
from model.text import TextClassifier
from pipeline.datasets.segmentation import Sample, SegmentationDataset


def world_entries(class_names: list[str], world_classes: list[dict]) -> list[dict | None]:
    """The world class each benchmark class names (its first name or synonym that is a world class's
    name or synonym, case-insensitive), ``None`` for a class naming none."""
    by_name: dict[str, dict] = {}
    for entry in world_classes:
        for name in [entry["name"], *entry.get("synonyms", [])]:
            by_name.setdefault(name.strip().lower(), entry)
    found: list[dict | None] = []
    for names in class_names:
        matches = (by_name.get(name.strip().lower()) for name in names.split(","))
        found.append(next((entry for entry in matches if entry is not None), None))
    return found


def class_subsets(class_names: list[str], world_classes: list[dict] | None) -> dict[str, np.ndarray]:
    """Boolean masks over the benchmark's classes: seen/unseen (and things/stuff) from the world's class list.

    A benchmark class is seen when any of its names is a name or synonym of a seen
    training class; with no class list, every subset is left out.
    """
    if not world_classes:
        return {}
    seen = np.zeros(len(class_names), bool)
    thing = np.zeros(len(class_names), bool)
    known_kind = np.zeros(len(class_names), bool)
    for i, entry in enumerate(world_entries(class_names, world_classes)):
        if entry is not None:
            seen[i] = bool(entry["seen"])
            thing[i] = bool(entry["isthing"])
            known_kind[i] = True
    subsets = {"seen": seen, "unseen": ~seen}
    if known_kind.all():
        subsets.update(things=thing, stuff=~thing)
    return subsets


def segmented_samples(
    dataset: SegmentationDataset, limit: int | None, *, desc: str
) -> Iterator[tuple[Sample, torch.Tensor, torch.Tensor]]:
    """``(sample, classes, masks)`` of the first ``limit`` images (all: ``None`` or 0) that hold a
    ground-truth segment, in the dataset's order (see :func:`model.oracle.gt_segments`)."""
    keys = dataset.keys()[:limit] if limit else dataset.keys()
    for key in progress(keys, desc=desc):
        sample = dataset.load(key)
        classes, masks = gt_segments(sample.label)
        if len(classes) > 0:
            yield sample, classes, masks


@full_precision
def top1(embeddings: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Each embedding's nearest class (cosine, float32 also under an inference autocast)."""
    return (embeddings.float() @ text.float().T).argmax(dim=1)


@torch.no_grad()
def crop_accuracy(
    bundle: ClipBundle,
    dataset: SegmentationDataset,
    *,
    subsets: dict[str, np.ndarray] | None = None,
    expand_ratio: float = 0.0,
    batch_size: int = 256,
    limit: int | None = None,
) -> dict:
    """Per-class and mean top-1 accuracy (percent) of classifying ground-truth segment crops."""
    names = dataset.class_names
    text = TextClassifier(bundle)(names)
    device = bundle.device
    use_prompts = bundle.prompts is not None
    correct = np.zeros(len(names), np.int64)
    total = np.zeros(len(names), np.int64)
    pending_crops: list[torch.Tensor] = []
    pending_masks: list[torch.Tensor] = []
    pending_labels: list[torch.Tensor] = []

    def flush() -> None:
        if not pending_crops:
            return
        crops = torch.cat(pending_crops)
        masks = torch.cat(pending_masks) if use_prompts else None
        labels = torch.cat(pending_labels).cpu().numpy()
        emb = bundle.encode_image(crops, masks)
        predicted = top1(emb, text).cpu().numpy()
        np.add.at(total, labels, 1)
        np.add.at(correct, labels, (predicted == labels).astype(np.int64))
        for pending in (pending_crops, pending_masks, pending_labels):
            pending.clear()

    for sample, classes, masks in segmented_samples(dataset, limit, desc="gt-gauge"):
        image = torch.from_numpy(sample.image).permute(2, 0, 1).to(device)
        crops = masked_crops(
            image, masks.to(device), size=bundle.image_size, mean=bundle.mean, std=bundle.std, expand_ratio=expand_ratio
        )
        pending_crops.append(crops.crops[crops.valid])
        pending_masks.append(crops.crop_masks[crops.valid])
        pending_labels.append(classes.to(device)[crops.valid])
        if sum(len(c) for c in pending_crops) >= batch_size:
            flush()
    flush()

    return accuracy_summary(names, correct, total, subsets, mask_prompts=use_prompts)


@torch.no_grad()
def one_pass_accuracy(
    segmenter: OnePassSegmenter,
    dataset: SegmentationDataset,
    *,
    subsets: dict[str, np.ndarray] | None = None,
    limit: int | None = None,
) -> dict:
    """:func:`crop_accuracy` for a one-pass classifier (maskpool or a Mask-Adapter): each image's
    ground-truth segments are classified from one CLIP pass over the image."""
    names = dataset.class_names
    text = segmenter.text_embeddings(names)
    correct = np.zeros(len(names), np.int64)
    total = np.zeros(len(names), np.int64)
    for sample, classes, masks in segmented_samples(dataset, limit, desc="mask classification"):
        image = image_to_tensor(sample.image, segmenter.clip.device)
        probs = segmenter.clip_probs([image], [masks.to(image.device)], text)[0]
        labels = classes.cpu().numpy()
        np.add.at(total, labels, 1)
        np.add.at(correct, labels, (probs.argmax(1).cpu().numpy() == labels).astype(np.int64))
    return accuracy_summary(names, correct, total, subsets)


def accuracy_summary(
    names: list[str], correct: np.ndarray, total: np.ndarray, subsets: dict[str, np.ndarray] | None, **extra
) -> dict:
    """Per-class and mean top-1 accuracy (percent) from per-class counts, over all classes and each subset."""
    present = total > 0
    per_class = np.where(present, 100.0 * correct / np.maximum(total, 1), np.nan)
    result = {
        "segments": int(total.sum()),
        "classes_present": int(present.sum()),
        "chance": round(100.0 / len(names), 2),
        "mean": _mean(per_class, present),
        "per_class": {
            name.split(",")[0].strip(): (None if np.isnan(v) else round(float(v), 2))
            for name, v in zip(names, per_class)
        },
        **extra,
    }
    for subset, member in sorted((subsets or {}).items()):
        result[subset] = _mean(per_class, present & member)
    return result


def _mean(per_class: np.ndarray, member: np.ndarray) -> float | None:
    return round(float(per_class[member].mean()), 2) if member.any() else None
