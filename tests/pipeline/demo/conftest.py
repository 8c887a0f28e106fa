"""A tiny project for the demo: a demo world, random-weight models at the default paths, pairs and rejects.

Built once per session; tests must not write into it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from core import paths
from core.rle import encode_rle
from model.clip import build_clip, save_clip_folder
from model.mask_adapter import MaskAdapter, MaskAdapterConfig, save_mask_adapter
from model.mpt import MaskPrompts
from model.proposer import build_proposer, load_proposer_config, save_proposer
from pipeline.beam.schemas import PAIRS, REJECTS, reject_row
from pipeline.datasets.manifest import load_world
from pipeline.mining.quality import TruthLabels
from pipeline.world.config import WorldConfig
from pipeline.world.generate import generate_world

TRAIN_IMAGES = 6


def pair_row(image_id: int, noun: str, mask: np.ndarray, similarity: float, margin: float | None) -> dict:
    rle = encode_rle(mask)
    ys, xs = np.nonzero(mask)
    bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
    return {
        "image_id": image_id,
        "file_name": f"{image_id:012d}.jpg",
        "noun": noun,
        "caption_ids": [image_id],
        "noun_count": 1,
        "mask_rle": rle["counts"],
        "height": mask.shape[0],
        "width": mask.shape[1],
        "bbox": bbox,
        "area": int(mask.sum()),
        "proposal_id": 0,
        "proposal_score": 0.5,
        "similarity": similarity,
        "softmax": round(1.0 - similarity, 3),
        "margin": margin,
    }


def write_pairs(root: Path) -> pa.Table:
    """Pairs of the world's training images: each class present under its name with its true segment
    (right), 'thing' (names no class) and the first class absent from the image (wrong), both with the
    segment of the first class present."""
    world = load_world(root / paths.WORLD_MANIFEST)
    truth = TruthLabels(world)
    rows = []
    for image_id in range(1, TRAIN_IMAGES + 1):
        label = truth.load(f"{image_id:012d}.jpg")
        present = [int(i) for i in np.unique(label) if i >= 0]
        for rank, index in enumerate(present):
            name = world.classes[index]["name"]
            rows.append(
                pair_row(
                    image_id,
                    name,
                    label == index,
                    0.2 + 0.05 * rank + 0.01 * image_id,
                    None if rank == 0 else 0.01 * rank,
                )
            )
        rows.append(pair_row(image_id, "thing", label == present[0], 0.1 + 0.01 * image_id, 0.02))
        absent = next(i for i in range(len(world.classes)) if i not in present)
        rows.append(pair_row(image_id, world.classes[absent]["name"], label == present[0], 0.15, 0.0))
    by_key = {(row["image_id"], row["noun"]): row for row in rows}  # one pair per (image, noun), as mined
    table = pa.Table.from_pylist([by_key[key] for key in sorted(by_key)], schema=PAIRS)
    (root / paths.PAIRS).mkdir(parents=True)
    pq.write_table(table, root / "data/pairs/part-00000-of-00001.parquet")
    rejects = [
        reject_row(
            "mine",
            "caption",
            "no_pair",
            image_id=1,
            caption_id=3,
            file_name="000000000001.jpg",
            detail="no region for its nouns",
        ),
        reject_row(
            "mine",
            "image",
            "no_proposal",
            image_id=2,
            file_name="000000000002.jpg",
            detail="no proposal above the score threshold",
        ),
        reject_row("nouns", "caption", "no_noun", image_id=3, caption_id=9, detail="no noun in 'A.'"),
    ]
    for stage in ("mine", "nouns"):
        folder = root / paths.REJECTS / stage
        folder.mkdir(parents=True)
        part = pa.Table.from_pylist([row for row in rejects if row["stage"] == stage], schema=REJECTS)
        pq.write_table(part, folder / "part-00000-of-00001.parquet")
    return table


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """``data/world`` (6 training images, 3 benchmark images of 64 px), ``artifacts/{proposer, clip_base,
    clip_ft_mpt (with mask prompts), adapter_base}`` with random weights, ``data/pairs``, ``data/rejects``."""
    root = tmp_path_factory.mktemp("demo_root")
    generate_world(
        WorldConfig(seed=2, train_images=TRAIN_IMAGES, benchmark_images=3, image_size=64, preview_images=1, workers=1),
        root / paths.WORLD,
    )
    artifacts = root / paths.ARTIFACTS
    clip = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    save_clip_folder(clip, artifacts / "clip_base")
    torch.manual_seed(0)
    adapter = MaskAdapter(MaskAdapterConfig(clip_dim=clip.embed_dim, num_maps=2, hidden=8, blocks=1, mask_prior=4.0))
    save_mask_adapter(adapter, artifacts / "adapter_base", clip_model=clip.model)
    tuned = build_clip("ovseg-tiny-vit", device="cpu", seed=1)
    tuned.prompts = MaskPrompts.for_visual(tuned.model.visual, 2, generator=torch.Generator().manual_seed(0))
    save_clip_folder(tuned, artifacts / "clip_ft_mpt")
    config = dataclasses.replace(load_proposer_config("proposer-tiny"), text_dim=clip.embed_dim)
    torch.manual_seed(0)
    save_proposer(build_proposer(config), artifacts / "proposer")
    write_pairs(root)
    return root
