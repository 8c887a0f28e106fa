"""Masked-crop training data: rows of (image file, mask as COCO RLE, noun), cropped on the fly.

The crops are never written to disk: :class:`MaskedCropDataset` decodes the image and
the mask and cuts the crop (in data-loader workers when there are any). The trainer
cuts every crop once, keeps them in memory and applies the per-epoch augmentation (a
random resized crop, as in the reference recipe) to whole batches, seeded by
(seed, epoch), so batches do not depend on the number of workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from core.classnames import display_name
from core.rle import decode_rle, encode_rle
from model.crops import masked_crops
from pipeline.datasets.coco import CocoStuffLabels
from pipeline.datasets.files import read_rgb


@dataclass(frozen=True)
class MaskPair:
    image_path: str
    rle: dict  # {"size": [h, w], "counts": "<ascii>"}
    noun: str


def pairs_from_label(image_path: str, label: np.ndarray, class_names: Sequence[str]) -> list[MaskPair]:
    """One pair per class present in a label map (0-based indices, -1 ignore): the ground-truth route."""
    pairs = []
    for index in np.unique(label[label >= 0]):
        name = display_name(class_names[int(index)])
        pairs.append(MaskPair(image_path, encode_rle(label == index), name))
    return pairs


def ground_truth_pairs(labels: CocoStuffLabels) -> list[MaskPair]:
    """One pair per class present in each training label map, in key order (what a fixed-vocabulary
    dataset gives; the world's ``train_labels()`` hold the seen classes only)."""
    pairs = []
    for key in labels.keys():  # noqa: SIM118 (a SegmentationDataset is not iterable: keys() lists it)
        sample = labels.load(key)
        pairs.extend(pairs_from_label(str(labels.image_path(key)), sample.label, labels.class_names))
    return pairs


class MaskedCropDataset(torch.utils.data.Dataset):
    """Item ``row`` gives ``(crop [3,S,S] normalised, crop_mask [S,S], noun index, valid)``."""

    def __init__(
        self, pairs: Sequence[MaskPair], nouns: Sequence[str], *, size: int, mean, std, expand_ratio: float = 0.0
    ):
        index = {noun: i for i, noun in enumerate(nouns)}
        self.pairs = list(pairs)
        self.labels = [index[p.noun] for p in self.pairs]
        self.size, self.expand_ratio = size, expand_ratio
        self.mean = torch.as_tensor(mean, dtype=torch.float32).cpu()
        self.std = torch.as_tensor(std, dtype=torch.float32).cpu()
        self._read = lru_cache(maxsize=64)(read_rgb)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, row: int):
        pair = self.pairs[row]
        image = torch.from_numpy(self._read(pair.image_path)).permute(2, 0, 1)
        mask = torch.from_numpy(decode_rle(pair.rle))
        if mask.shape != image.shape[1:]:
            raise ValueError(
                f"{pair.image_path}: mask size {tuple(mask.shape)} differs from the image's {tuple(image.shape[1:])}"
            )
        crops = masked_crops(
            image, mask[None], size=self.size, mean=self.mean, std=self.std, expand_ratio=self.expand_ratio
        )
        return crops.crops[0], crops.crop_masks[0], self.labels[row], bool(crops.valid[0])


def collate(items):
    crops, masks, labels, valid = zip(*items)
    return torch.stack(crops), torch.stack(masks), torch.tensor(labels), torch.tensor(valid)


def read_pairs(pairs_dir: str | Path, images_dir: str | Path, *, limit: int | None = None) -> list[MaskPair]:
    """The mined pairs of ``data/pairs/*.parquet`` as :class:`MaskPair` rows, in file and row order.

    ``file_name`` is resolved under ``images_dir`` and may not leave it. ``limit`` keeps
    the pairs with the highest CLIP similarity (ties by image and noun), for experiments
    on the number of mined pairs.
    """
    import pyarrow.parquet as pq

    from core.io import safe_join

    files = sorted(Path(pairs_dir).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{pairs_dir}: no Parquet files of mined pairs")
    columns = ["image_id", "file_name", "noun", "mask_rle", "height", "width", "similarity"]
    rows = []
    for path in files:
        table = pq.read_table(path, columns=columns)
        rows.extend(table.to_pylist())
    if limit is not None and limit < len(rows):
        rows = sorted(rows, key=lambda r: (-r["similarity"], r["image_id"], r["noun"]))[:limit]
        rows.sort(key=lambda r: (r["image_id"], r["noun"]))
    return [
        MaskPair(
            str(safe_join(images_dir, r["file_name"])),
            {"size": [r["height"], r["width"]], "counts": r["mask_rle"]},
            r["noun"],
        )
        for r in rows
    ]
