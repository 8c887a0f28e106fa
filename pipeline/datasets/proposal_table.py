"""The proposals table: one row per mask of an image, the format of ``ovseg propose``.

| column | type | meaning |
| --- | --- | --- |
| file_name | string | image path relative to the images folder (POSIX separators) |
| proposal_id | int32 | the proposer query |
| score | float32 | objectness ``1 − p(no object)`` against the vocabulary |
| class_name | string | the vocabulary class the proposer rates highest for the proposal |
| class_prob | float32 | that class's probability (``≤ score``) |
| mask_rle | string | COCO RLE ``counts`` of the ``height × width`` mask |
| height, width | int32 | the image's size |
| bbox | list<float32> | COCO ``[x, y, w, h]`` of the mask (``[0, 0, 0, 0]`` for an empty one) |
| area | int64 | mask pixels |

Rows are sorted by :data:`PROPOSALS_SORT_BY`. The column conventions are those of
``data/pairs`` (:data:`pipeline.beam.schemas.PAIRS`). Written by ``ovseg propose``
(:mod:`pipeline.mining.proposal_export`) and, with the proposer's full outputs added, by the
``propose`` stage (:mod:`pipeline.evaluation.stored_proposals`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.columns import MASK_FIELDS, required
from core.io import atomic_write_bytes
from core.rle import encode_rle

if TYPE_CHECKING:  # tensors are taken, torch is not needed here
    import torch

PROPOSALS = pa.schema(
    [
        required("file_name", pa.string()),
        required("proposal_id", pa.int32()),
        required("score", pa.float32()),
        required("class_name", pa.string()),
        required("class_prob", pa.float32()),
        *MASK_FIELDS,
    ]
)
PROPOSALS_SORT_BY = ("file_name", "proposal_id")


#: Fixed writer settings: Parquet bytes depend on them (and on the pyarrow version).
PARQUET_SETTINGS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "row_group_size": 1024,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}


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
    keep_empty: bool = False,
) -> list[dict[str, Any]]:
    """Rows of one image: ``masks [Q,H,W]`` bool, ``scores [Q]``, ``class_probs [Q,C]`` (tensors).

    Empty masks (unless ``keep_empty``: then kept with bbox ``[0, 0, 0, 0]`` and area 0)
    and proposals scoring below ``min_score`` are left out.
    """
    masks_np = masks.cpu().numpy()
    scores_np = scores.float().cpu().numpy()
    best_prob, best_class = class_probs.float().max(dim=1)
    height, width = masks_np.shape[-2:]
    rows = []
    for q in range(masks_np.shape[0]):
        mask = masks_np[q]
        area = int(mask.sum())
        if (area == 0 and not keep_empty) or scores_np[q] < min_score:
            continue
        rows.append(
            {
                "file_name": file_name,
                "proposal_id": q,
                "score": float(scores_np[q]),
                "class_name": class_names[int(best_class[q])],
                "class_prob": float(best_prob[q]),
                "mask_rle": encode_rle(mask)["counts"],
                "height": height,
                "width": width,
                "bbox": mask_bbox(mask) if area else [0.0, 0.0, 0.0, 0.0],
                "area": area,
            }
        )
    return rows


def write_table(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write ``table`` as one Parquet file, atomically (temporary file, then rename), with the
    fixed :data:`PARQUET_SETTINGS`: the same table gives the same bytes."""
    path = Path(path)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **PARQUET_SETTINGS)
    atomic_write_bytes(path, buffer.getvalue())
    return path
