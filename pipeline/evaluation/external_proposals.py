"""Masks from any generator (SAM's automatic masks, ``ovseg propose``, ...), read per image from Parquet.

The file is a table in the ``ovseg propose`` format (:data:`pipeline.mining.proposal_export.PROPOSALS`),
one row per mask. The columns read here (:data:`COLUMNS`) must be there:

| column | type | meaning |
| --- | --- | --- |
| file_name | string | image path relative to the images folder (POSIX separators) |
| proposal_id | int32 | the mask's id, unique per image; masks come back in its order |
| score | float32 | objectness, finite and >= 0 (1.0 when the generator has none) |
| mask_rle | string | COCO RLE ``counts`` of the ``height × width`` mask |
| height, width | int32 | the image's size |

The others (``class_name``, ``class_prob``, ``bbox``, ``area``) are not read and may be
missing: a generator without classes has nothing to put there. Wider integer and float
types are accepted when their values fit. Every ``file_name`` must stay inside the images
folder (:func:`core.io.safe_join`). Masks stay encoded until an image asks for them.

The reading and decoding here also serve the proposer's full outputs that the ``propose``
stage stores (:mod:`pipeline.evaluation.stored_proposals`): :func:`read_proposals` takes
the columns to read and the row type to build.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from core.io import safe_join
from core.rle import decode_rle
from pipeline.datasets.segmentation import SegmentationDataset

#: The columns a proposals file must have, with the types of ``ovseg propose``'s table.
COLUMNS: dict[str, pa.DataType] = {
    "file_name": pa.string(),
    "proposal_id": pa.int32(),
    "score": pa.float32(),
    "mask_rle": pa.string(),
    "height": pa.int32(),
    "width": pa.int32(),
}

#: One image's masks: bool ``[Q, H, W]`` and float32 scores ``[Q]``, in ``proposal_id`` order.
ImageMasks = tuple[torch.Tensor, torch.Tensor]


class _ImageFiles(Protocol):
    """A benchmark that names its files (as :class:`pipeline.datasets.benchmarks.FolderBenchmark` does)."""

    def paths(self, key: str) -> tuple[Path, Path]: ...


@dataclass(frozen=True)
class EncodedMask:
    """One row of a proposals file, its mask still COCO RLE."""

    proposal_id: int
    score: float
    counts: str
    height: int
    width: int


@dataclass(frozen=True)
class ProposalFile:
    """A proposals file's rows grouped by ``file_name``, each group sorted by ``proposal_id``."""

    path: Path
    images: dict[str, tuple[EncodedMask, ...]]

    def masks(self, file_name: str) -> ImageMasks | None:
        """The decoded masks and scores of one image; ``None`` when the file has no row for it."""
        rows = self.images.get(file_name)
        if rows is None:
            return None
        scores = torch.tensor([row.score for row in rows], dtype=torch.float32)
        return decode_masks(rows, file_name, self.path), scores


def decode_masks(rows: Sequence[EncodedMask], file_name: str, path: Path) -> torch.Tensor:
    """The bool masks ``[Q, H, W]`` of one image's rows (see :func:`decode_mask`)."""
    return torch.from_numpy(np.stack([decode_mask(row, file_name, path) for row in rows]))


def read_proposals(
    path: str | os.PathLike,
    images_root: str | os.PathLike,
    columns: dict[str, pa.DataType] = COLUMNS,
    row_type: type[EncodedMask] = EncodedMask,
) -> ProposalFile:
    """Read and check a proposals file whose ``file_name`` values are relative to ``images_root``.

    ``columns`` (:data:`COLUMNS` first, then any more) are read and each row becomes
    ``row_type(*values)`` (a subclass of :class:`EncodedMask` with the further columns as fields).

    ``FileNotFoundError`` for a missing file; ``ValueError`` naming the file and the problem
    for anything else (not Parquet, a missing column or one of the wrong type, nulls, a bad
    size or score, a ``file_name`` leaving ``images_root``, a repeated ``proposal_id``, two
    sizes for one image). Masks are checked when decoded (:meth:`ProposalFile.masks`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: proposals file not found")
    table = read_columns(path, columns)
    values = {name: table.column(name).to_pylist() for name in columns}
    check_values(values, path)
    groups: dict[str, list[EncodedMask]] = {}
    for name, *fields in zip(*(values[c] for c in columns)):
        groups.setdefault(name, []).append(row_type(*fields))
    return ProposalFile(path, {name: check_group(name, rows, images_root, path) for name, rows in groups.items()})


def read_columns(path: Path, columns: dict[str, pa.DataType] = COLUMNS) -> pa.Table:
    """The ``columns`` of a Parquet file, cast to their types; ``ValueError`` naming what is wrong."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    missing = [name for name in columns if name not in schema.names]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; a proposals file needs {list(columns)} (the `ovseg propose` format)"
        )
    table = pq.read_table(path, columns=list(columns))
    for name, wanted in columns.items():
        try:
            column = table.column(name).cast(wanted)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(
                f"{path}: column {name!r} has type {schema.field(name).type}, expected {wanted} ({exc})"
            ) from exc
        if column.null_count:
            raise ValueError(f"{path}: column {name!r} has {column.null_count} null value(s)")
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def check_values(columns: dict[str, list], path: Path) -> None:
    """Sizes >= 1 and finite scores >= 0, row by row; ``ValueError`` naming the first bad row."""
    for row, (name, pid, score, height, width) in enumerate(
        zip(*(columns[c] for c in ("file_name", "proposal_id", "score", "height", "width")))
    ):
        if height < 1 or width < 1:
            raise ValueError(f"{path}: row {row} ({name!r}, proposal {pid}) has size {height}×{width}")
        if not math.isfinite(score) or score < 0:
            raise ValueError(f"{path}: row {row} ({name!r}, proposal {pid}) has score {score}; scores are >= 0")


def check_group(
    name: str, rows: list[EncodedMask], images_root: str | os.PathLike, path: Path
) -> tuple[EncodedMask, ...]:
    """One image's rows sorted by ``proposal_id``, after checking its name, ids and size."""
    try:
        safe_join(images_root, name)
    except ValueError as exc:
        raise ValueError(f"{path}: file_name {name!r} is not a path inside the images folder ({exc})") from exc
    rows = sorted(rows, key=lambda row: row.proposal_id)
    ids = [row.proposal_id for row in rows]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{path}: image {name!r} repeats proposal_id {repeated}")
    sizes = sorted({(row.height, row.width) for row in rows})
    if len(sizes) > 1:
        raise ValueError(f"{path}: image {name!r} has rows of different sizes {sizes}")
    return tuple(rows)


def rle_run_lengths(counts: str) -> list[int]:
    """The run lengths a COCO compressed RLE string encodes (pycocotools' reading of it).

    ``ValueError`` for a character outside the alphabet or a truncated last run.
    pycocotools itself does not check that the runs cover the mask: it decodes garbage.
    """
    runs: list[int] = []
    value = shift = 0
    for char in counts:
        code = ord(char) - 48
        if not 0 <= code < 64:
            raise ValueError(f"character {char!r} is not COCO RLE")
        value |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:  # more 5-bit groups follow
            continue
        if code & 0x10:  # sign bit of the last group
            value |= -1 << shift
        if len(runs) > 2:  # runs after the second are stored as differences
            value += runs[-2]
        runs.append(value)
        value = shift = 0
    if shift:
        raise ValueError("the last run is truncated")
    return runs


def decode_mask(row: EncodedMask, file_name: str, path: Path) -> np.ndarray:
    """The bool ``[height, width]`` mask of a row; ``ValueError`` when its RLE does not decode to that size."""
    where = f"{path}: mask {row.proposal_id} of {file_name!r}"
    try:
        runs = rle_run_lengths(row.counts)
    except ValueError as exc:
        raise ValueError(f"{where} is not a COCO RLE string: {exc}") from exc
    if any(run < 0 for run in runs) or sum(runs) != row.height * row.width:
        raise ValueError(f"{where} does not decode to {row.height}×{row.width}: its runs cover {sum(runs)} pixels")
    return decode_rle({"counts": row.counts, "size": [row.height, row.width]})


def images_folder(dataset: SegmentationDataset) -> Path:
    """The folder a benchmark's image paths are relative to: its ``images_dir`` (as
    :class:`pipeline.datasets.benchmarks.FolderBenchmark` has); ``ValueError`` for a benchmark without one."""
    images_dir = getattr(dataset, "images_dir", None)
    if images_dir is None or not callable(getattr(dataset, "paths", None)):
        raise ValueError(f"benchmark {dataset.name!r} does not say where its image files are")
    return Path(images_dir)


def benchmark_image_name(dataset: SegmentationDataset, key: str) -> str:
    """The image file of a benchmark key relative to :func:`images_folder`, POSIX separators:
    the ``file_name`` that ``ovseg propose --images <that folder>`` writes for it."""
    image_path = cast(_ImageFiles, dataset).paths(key)[0]  # a benchmark without paths() fails here
    return image_path.relative_to(images_folder(dataset).resolve()).as_posix()


def benchmark_proposals(proposals: ProposalFile, dataset: SegmentationDataset) -> Callable[[str], ImageMasks | None]:
    """Masks by benchmark key (see :func:`benchmark_image_name`), ``None`` for an image the file lacks."""
    return lambda key: proposals.masks(benchmark_image_name(dataset, key))
