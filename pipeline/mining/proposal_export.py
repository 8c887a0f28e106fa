"""A proposer's masks for a folder of images, as one Parquet table (``ovseg propose``).

One row per non-empty binarised proposal, sorted by ``(file_name, proposal_id)``:

| column | type | meaning |
| --- | --- | --- |
| file_name | string | image path relative to the folder (POSIX separators) |
| proposal_id | int32 | the proposer query |
| score | float32 | objectness ``1 − p(no object)`` against the vocabulary |
| class_name | string | the vocabulary class the proposer rates highest for the proposal |
| class_prob | float32 | that class's probability (``≤ score``) |
| mask_rle | string | COCO RLE ``counts`` of the ``height × width`` mask |
| height, width | int32 | the image's size |
| bbox | list<float32> | COCO ``[x, y, w, h]`` of the mask |
| area | int64 | mask pixels |

The column conventions are those of ``data/pairs`` (:data:`pipeline.schemas.PAIRS`).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from model.proposer import MaskProposer, propose
from pipeline.datasets.files import read_rgb
from pipeline.io import atomic_write_bytes, safe_join
from pipeline.mask_pairs import encode_rle
from pipeline.training import progress

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

PROPOSALS = pa.schema(
    [
        pa.field("file_name", pa.string(), nullable=False),
        pa.field("proposal_id", pa.int32(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
        pa.field("class_name", pa.string(), nullable=False),
        pa.field("class_prob", pa.float32(), nullable=False),
        pa.field("mask_rle", pa.string(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("bbox", pa.list_(pa.field("item", pa.float32(), nullable=False)), nullable=False),
        pa.field("area", pa.int64(), nullable=False),
    ]
)
PROPOSALS_SORT_BY = ("file_name", "proposal_id")


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image files directly inside ``folder`` (by suffix, case-insensitive), as sorted relative names.

    Raises ``FileNotFoundError`` for a missing folder and ``ValueError`` when it holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise ValueError(f"{folder}: no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    return names


def mask_bbox(mask: np.ndarray) -> list[float]:
    """COCO ``[x, y, w, h]`` of a non-empty bool mask ``[H, W]`` (pixel-edge coordinates)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        raise ValueError("an empty mask has no bounding box")
    return [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]


def proposal_rows(
    file_name: str,
    masks: torch.Tensor,
    scores: torch.Tensor,
    class_probs: torch.Tensor,
    class_names: Sequence[str],
    min_score: float = 0.0,
) -> list[dict[str, Any]]:
    """Rows of one image: ``masks [Q,H,W]`` bool, ``scores [Q]``, ``class_probs [Q,C]``.

    Empty masks and proposals scoring below ``min_score`` are left out.
    """
    masks_np = masks.cpu().numpy()
    scores_np = scores.float().cpu().numpy()
    best_prob, best_class = class_probs.float().max(dim=1)
    height, width = masks_np.shape[-2:]
    rows = []
    for q in range(masks_np.shape[0]):
        mask = masks_np[q]
        area = int(mask.sum())
        if area == 0 or scores_np[q] < min_score:
            continue
        rows.append({
            "file_name": file_name,
            "proposal_id": q,
            "score": float(scores_np[q]),
            "class_name": class_names[int(best_class[q])],
            "class_prob": float(best_prob[q]),
            "mask_rle": encode_rle(mask)["counts"],
            "height": height,
            "width": width,
            "bbox": mask_bbox(mask),
            "area": area,
        })
    return rows


def _equal_size_runs(folder: Path, names: Sequence[str], batch_size: int) -> Iterator[list[tuple[str, np.ndarray]]]:
    run: list[tuple[str, np.ndarray]] = []
    for name in names:
        image = read_rgb(safe_join(folder, name))
        if run and (len(run) == batch_size or run[0][1].shape != image.shape):
            yield run
            run = []
        run.append((name, image))
    if run:
        yield run


@torch.no_grad()
def propose_folder(
    model: MaskProposer,
    folder: str | os.PathLike,
    text_embeddings: torch.Tensor,
    class_names: Sequence[str],
    *,
    mask_threshold: float = 0.4,
    min_score: float = 0.0,
    batch_size: int = 16,
) -> tuple[pa.Table, int]:
    """Propose for every image of ``folder``; returns the sorted table and the number of images.

    ``text_embeddings [C,D]`` are the rows of ``class_names``. An unreadable image
    raises ``ValueError`` naming it.
    """
    if text_embeddings.shape[0] != len(class_names):
        raise ValueError(f"{text_embeddings.shape[0]} text embeddings for {len(class_names)} class names")
    folder = Path(folder)
    names = list_images(folder)
    model.eval()
    device = next(model.parameters()).device
    text = text_embeddings.to(device)
    rows: list[dict[str, Any]] = []
    runs = progress(_equal_size_runs(folder, names, batch_size), desc="propose", total=-(-len(names) // batch_size))
    for run in runs:
        images = torch.from_numpy(np.stack([image for _, image in run])).permute(0, 3, 1, 2).to(device)
        proposals = propose(model, images, text, mask_threshold=mask_threshold)
        for i, (name, _) in enumerate(run):
            rows.extend(proposal_rows(name, proposals.masks[i], proposals.scores[i], proposals.class_probs[i],
                                      class_names, min_score))
    rows.sort(key=lambda r: (r["file_name"], r["proposal_id"]))
    return pa.Table.from_pylist(rows, schema=PROPOSALS), len(names)


def write_table(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write ``table`` as one Parquet file, atomically (temporary file, then rename)."""
    path = Path(path)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path
