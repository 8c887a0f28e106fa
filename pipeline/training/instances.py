"""Per-instance ground truth for the Mask-Adapter: one mask per thing instance, one per stuff class.

The reference trains on COCO-Panoptic targets (``fcclip/fcclip.py`` ``prepare_targets_for_maskadapter``): each
thing instance is its own ground-truth mask, a stuff region one mask. A semantic label map alone gives one mask
per class, which merges a picture's three cars into one segment that no proposal matches at IoU > 0.7. The demo
world writes the instances of its training images (``truth/instances_train.json``, COCO instances format,
``World.truth()``); a real COCO-Stuff world has only the semantic PNGs, and training falls back to one mask per
class (:func:`world_instances` says so).

An image's instances travel with its label map as an **instance-id map** ``[H, W]`` (0: no instance, k: its
k-th thing instance), resized exactly as the labels are (nearest), so that the segments are cut after any resize:
:func:`instance_segments` splits each class's pixels by instance id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.rle import decode_rle
from model.oracle import gt_segments
from pipeline.datasets.manifest import World


@dataclass(frozen=True)
class InstanceMaps:
    """Per training image (its key: the file name's stem), its thing instances ``(seen class index, RLE)`` in
    annotation order. Stuff regions and unseen classes are not listed: their pixels keep one mask per class."""

    by_key: dict[str, list[tuple[int, dict[str, Any]]]]

    @classmethod
    def from_coco(cls, instances: dict[str, Any], seen_ids: Sequence[int]) -> InstanceMaps:
        """From a COCO instances JSON whose ``category_id`` are class ids; ``seen_ids[i]`` is the id of the
        training labels' class ``i``."""
        index_of = {int(class_id): i for i, class_id in enumerate(seen_ids)}
        things = {int(c["id"]) for c in instances.get("categories", []) if c.get("isthing")}
        stem_of = {int(image["id"]): str(image["file_name"]).rsplit(".", 1)[0] for image in instances["images"]}
        by_key: dict[str, list[tuple[int, dict[str, Any]]]] = {stem: [] for stem in stem_of.values()}
        for annotation in instances["annotations"]:
            category = int(annotation["category_id"])
            if category in things and category in index_of and not annotation.get("iscrowd", 0):
                by_key[stem_of[int(annotation["image_id"])]].append((index_of[category], annotation["segmentation"]))
        return cls(by_key)

    def id_map(self, key: str, size: tuple[int, int]) -> np.ndarray:
        """Image ``key``'s instance-id map ``[H, W]`` int64 at ``size`` (nearest, as the training labels are
        resized); all zeros for an image without instances."""
        instances = self.by_key.get(key, [])
        if not instances:
            return np.zeros(size, dtype=np.int64)
        ids = np.zeros(tuple(instances[0][1]["size"]), dtype=np.int64)
        for k, (_, rle) in enumerate(instances, start=1):
            ids[decode_rle(rle)] = k  # visible regions: they do not overlap
        if ids.shape != tuple(size):
            resized = F.interpolate(
                torch.from_numpy(ids.astype(np.float32))[None, None], size=size, mode="nearest-exact"
            )
            ids = resized[0, 0].round().to(torch.int64).numpy()
        return ids

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for key in sorted(self.by_key):
            digest.update(key.encode())
            for index, rle in self.by_key[key]:
                digest.update(f"{index}:{rle['counts']}".encode())
        return digest.hexdigest()[:16]


def world_instances(world: World, log: Any = print) -> InstanceMaps | None:
    """The world's thing instances over its seen classes, or ``None`` (with a log line) where it has none:
    a real COCO-Stuff world, whose training then uses one mask per class."""
    if world.truth_paths is None:
        log(
            f"mask_adapter: the {world.source} world has no instance annotations (semantic labels only); "
            "ground truth is one mask per class, not per instance"
        )
        return None
    return InstanceMaps.from_coco(world.truth().instances(), [int(c["id"]) for c in world.seen_classes])


def instance_segments(
    label: torch.Tensor, ids: torch.Tensor, ignore_index: int = -1
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(classes [K], masks [K, H, W] bool)`` of a label map ``[H, W]`` and its instance-id map: one mask per
    instance for a class with instances (its pixels outside every instance are left out), one per class
    otherwise (stuff). Classes ascending, a class's instances in id order."""
    classes, masks = gt_segments(label, ignore_index)
    ids = ids.to(masks.device)
    out_classes, out_masks = [], []
    for c, mask in zip(classes.tolist(), masks):
        inside = torch.unique(ids[mask])
        inside = inside[inside > 0]
        parts = [mask & (ids == k) for k in inside.tolist()] if len(inside) else [mask]
        out_classes += [c] * len(parts)
        out_masks += parts
    if not out_masks:
        return classes, masks
    return torch.tensor(out_classes, dtype=classes.dtype, device=classes.device), torch.stack(out_masks)


@dataclass
class WithInstances:
    """Training images (``TrainingSet`` or ``StreamingTrainingSet``) whose batches also give the instance-id maps
    ``[B, H, W]`` at the labels' size: ``batch`` returns ``(images, labels, ids)``."""

    images: Any
    maps: InstanceMaps

    def __len__(self) -> int:
        return len(self.images)

    def fingerprint(self) -> str:
        return f"{self.images.fingerprint()}:{self.maps.fingerprint()}"

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, labels = self.images.batch(indices)
        size = tuple(labels.shape[-2:])
        ids = [torch.from_numpy(self.maps.id_map(self.images.keys[i], size)) for i in indices]
        return images, labels, torch.stack(ids)
