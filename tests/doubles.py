"""Test doubles shared by several test modules (import as ``tests.doubles``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from core.rle import encode_rle
from model.proposer import MaskProposer, Vocabulary, build_proposer, load_proposer_config
from pipeline.datasets.manifest import World, load_world
from pipeline.datasets.segmentation import Sample
from pipeline.training.checkpoint import Checkpointer
from pipeline.training.mask_pairs import MaskPair
from pipeline.world.config import WorldConfig
from pipeline.world.generate import generate_world

#: The nouns of :func:`mask_pairs`, one band of each picture apiece.
NOUNS = ["zebra", "lemon", "ring", "sky"]


class MemoryDataset:
    """A :class:`~pipeline.datasets.segmentation.SegmentationDataset` over samples held in memory."""

    def __init__(self, name: str, class_names: Iterable[str], samples: Iterable[Sample]):
        self.name = name
        self.class_names = list(class_names)
        self._samples = {s.key: s for s in samples}

    def keys(self) -> list[str]:
        return sorted(self._samples)

    def __len__(self) -> int:
        return len(self._samples)

    def load(self, key: str) -> Sample:
        return self._samples[key]


def save_then_die(epoch: int, error: type[BaseException] = KeyboardInterrupt):
    """A :meth:`Checkpointer.save` that saves, then raises ``error`` once ``epoch`` is saved: a kill between
    epochs (assign it to ``Checkpointer.save``; :func:`killed_after_epoch` does and undoes it)."""
    save = Checkpointer.save

    def patched(self, **kwargs):
        path = save(self, **kwargs)
        if kwargs["epoch"] == epoch:
            raise error(f"killed after epoch {epoch}")
        return path

    return patched


@contextmanager
def killed_after_epoch(epoch: int) -> Iterator[None]:
    """The block runs with :func:`save_then_die` in place and must be killed by it; the real save comes back."""
    save = Checkpointer.save
    Checkpointer.save = save_then_die(epoch)
    try:
        with pytest.raises(KeyboardInterrupt, match=f"killed after epoch {epoch}"):
            yield
    finally:
        Checkpointer.save = save


def shapes(n: int = 8, size: int = 32, odd_one: str | None = None) -> MemoryDataset:
    """``n`` in-memory 32-px scenes: a background class, a square, a disc (``odd_one`` is cut shorter)."""
    rng = np.random.default_rng(0)
    palette = np.array([[60, 160, 70], [220, 40, 30], [30, 50, 220]], np.uint8)
    yy, xx = np.mgrid[:size, :size]
    samples = []
    for i in range(n):
        label = np.zeros((size, size), np.int32)
        r, c = rng.integers(2, size // 2, 2)
        label[r : r + size // 3, c : c + size // 3] = 1
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        label[(yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6) ** 2] = 2
        label[:, -2:] = -1
        image = palette[label.clip(0)] + rng.integers(0, 30, (size, size, 3), dtype=np.uint8)
        key = f"img{i:02d}"
        if key == odd_one:
            image, label = image[:-4], label[:-4]
        samples.append(Sample(key, image, label))
    return MemoryDataset("shapes", ["ground", "square", "disc"], samples)


#: The colours of :data:`NOUNS` in :func:`mask_pairs` ``painted``.
COLOURS = [(250, 250, 250), (240, 220, 20), (200, 120, 30), (60, 120, 240)]


def mask_pairs(folder: Path, images: int, painted: bool = False) -> list[MaskPair]:
    """``images`` random 24-px pictures written to ``folder``, one mask per noun of :data:`NOUNS` in each;
    ``painted``: each noun's mask filled with its colour (:data:`COLOURS`), so that a crop tells its noun."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(images):
        path = folder / f"{i}.jpg"
        image = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
        masks = []
        for j, noun in enumerate(NOUNS):
            mask = np.zeros((24, 24), bool)
            mask[j * 6 : (j + 1) * 6, (i % 3) * 4 : (i % 3) * 4 + 12] = True
            if painted:
                image[mask] = COLOURS[j]
            masks.append(MaskPair(str(path), encode_rle(mask), noun))
        Image.fromarray(image).save(path)
        out += masks
    return out


def random_proposer(text_dim: int, vocabulary: Sequence[str] = ()) -> MaskProposer:
    """``proposer-tiny`` with random weights (torch seed 0) for ``text_dim``-wide text embeddings; with
    ``vocabulary`` names, random unit embeddings of them, drawn after the weights."""
    torch.manual_seed(0)
    proposer = build_proposer(dataclasses.replace(load_proposer_config("proposer-tiny"), text_dim=text_dim))
    if vocabulary:
        embeddings = torch.nn.functional.normalize(torch.randn(len(vocabulary), text_dim), dim=-1)
        proposer.vocabulary = Vocabulary(tuple(vocabulary), embeddings)
    return proposer


def demo_world(root: Path, train_images: int) -> World:
    """A demo world of 64-px images (seed 2, one benchmark image) generated under ``root``."""
    generate_world(
        WorldConfig(seed=2, train_images=train_images, benchmark_images=1, image_size=64, preview_images=1, workers=1),
        root,
    )
    return load_world(root / "manifest.json")


def pair_row(image_id: int, noun: str, mask: np.ndarray, similarity: float = 0.5) -> dict[str, Any]:
    """A ``data/pairs`` row of ``mask`` for ``noun`` in image ``image_id``."""
    rle = encode_rle(mask)
    return {
        "image_id": image_id,
        "file_name": f"{image_id:012d}.jpg",
        "noun": noun,
        "caption_ids": [1],
        "noun_count": 1,
        "mask_rle": rle["counts"],
        "height": mask.shape[0],
        "width": mask.shape[1],
        "bbox": [0.0, 0.0, 1.0, 1.0],
        "area": int(mask.sum()),
        "proposal_id": 0,
        "proposal_score": 1.0,
        "similarity": similarity,
        "softmax": 0.5,
        "margin": None,
    }


def label_map() -> np.ndarray:
    """The segmenter tests' ``40×56`` truth: a box of class 2, one of class 1, the first three columns ignore."""
    gt = np.zeros((40, 56), dtype=np.int32)
    gt[5:20, 8:30] = 2
    gt[22:38, 30:52] = 1
    gt[:, :3] = -1
    return gt
