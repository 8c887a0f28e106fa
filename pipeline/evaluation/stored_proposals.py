"""The proposer's outputs on a benchmark, computed once (the ``propose`` stage) and read by every evaluation.

The proposer is frozen and deterministic, so every variant of ``evaluate`` would rerun it on
the same images. The ``propose`` stage runs it once per benchmark (:func:`propose_benchmark`,
the batches and image sizes of the evaluation) and writes ``data/proposals/<benchmark>.parquet``:
the proposals table of ``ovseg propose`` (:mod:`pipeline.datasets.proposal_table`), one row per
proposer *query* (empty masks included, so rows per image = queries, or ``max_proposals``), plus

| column | type | meaning |
| --- | --- | --- |
| class_probs | list<float32> | ``p(c|q)`` over the benchmark's classes (softmax over C+1, no-object dropped) |
| mask_logits | binary | the stride-4 mask logits, float32 little-endian, row-major |
| logits_height, logits_width | int32 | their size (``ceil(height/4) × ceil(width/4)``) |

``height``/``width`` are the size the images are segmented at (``evaluate.short_side``), and
the schema metadata ``ovseg.proposals`` (JSON, :class:`ProposalsInfo`) says what the file
holds. :meth:`StoredProposals.get` gives back an image's :class:`Proposals` exactly as the
live proposer computes them: the binary masks from the RLE, the soft masks from the logits
(:func:`model.proposer.inference.soft_masks`), the class probabilities and scores as stored.
Reading and decoding are those of external proposals (:mod:`.external_proposals`), so the
file is also a valid ``--proposals`` file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from core.classnames import display_names
from core.columns import required
from model.precision import Precision, inference_autocast
from model.proposal_segmenter import ProposalSegmenter
from model.proposer.inference import Proposals, soft_masks
from pipeline.datasets.proposal_table import PROPOSALS, PROPOSALS_SORT_BY, proposal_rows
from pipeline.datasets.segmentation import SegmentationDataset
from pipeline.evaluation.external_proposals import (
    COLUMNS,
    EncodedMask,
    benchmark_image_name,
    decode_masks,
    images_folder,
    read_proposals,
)
from pipeline.evaluation.miou import EvalConfig, benchmark_keys, segmented_batches

#: The columns beyond the proposals table that reproduce the proposer exactly.
OUTPUT_COLUMNS: dict[str, pa.DataType] = {
    "class_probs": pa.list_(pa.float32()),
    "mask_logits": pa.binary(),
    "logits_height": pa.int32(),
    "logits_width": pa.int32(),
}
SCHEMA = pa.schema([*PROPOSALS, *(required(name, kind) for name, kind in OUTPUT_COLUMNS.items())])
METADATA_KEY = b"ovseg.proposals"


@dataclass(frozen=True)
class ProposalsInfo:
    """What a stored file holds: the benchmark, its class names (the order of ``class_probs``), the
    evaluation settings that shape the proposals, the counts, and ``text_sha256``: the SHA-256 of the
    float32 text embeddings the proposer scored the classes against."""

    benchmark: str
    class_names: list[str]
    short_side: int | None
    mask_threshold: float
    max_images: int | None
    images: int
    queries: int
    text_sha256: str
    max_proposals: int | None = None
    precision: Precision = "fp32"


@dataclass(frozen=True)
class ProposerRow(EncodedMask):
    """A row of a stored file: the mask, and what the proposer said about it."""

    class_probs: list[float]
    mask_logits: bytes
    logits_height: int
    logits_width: int


def text_fingerprint(text_emb: torch.Tensor) -> str:
    """SHA-256 of text embeddings as float32 bytes: equal embeddings, equal proposer outputs."""
    return hashlib.sha256(text_emb.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()


def image_rows(file_name: str, proposals: Proposals, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of one image's proposer outputs (batch dimension 1, masks and logits kept), one per query."""
    if proposals.masks is None or proposals.mask_logits is None:
        raise ValueError("proposals without binarised masks or stride-4 logits cannot be stored")
    rows = proposal_rows(
        file_name,
        proposals.masks[0],
        proposals.scores[0],
        proposals.class_probs[0],
        display_names(class_names),
        keep_empty=True,
    )
    logits = proposals.mask_logits[0].to("cpu", torch.float32).numpy().astype("<f4")
    class_probs = proposals.class_probs[0].to("cpu", torch.float32).numpy()
    for row in rows:
        q = row["proposal_id"]
        row.update(
            class_probs=class_probs[q].tolist(),
            mask_logits=logits[q].tobytes(),
            logits_height=logits.shape[1],
            logits_width=logits.shape[2],
        )
    return rows


@torch.no_grad()
def propose_benchmark(segmenter: ProposalSegmenter, dataset: SegmentationDataset, settings: EvalConfig) -> pa.Table:
    """The proposer of ``segmenter`` over the images an evaluation with ``settings`` covers, in its
    batches and at its sizes; the sorted table, its :class:`ProposalsInfo` in the schema metadata.

    ``ValueError`` when the counts do not add up (every image must have one row per query).
    """
    with inference_autocast(settings.precision, segmenter.device):  # as the live proposer of an evaluation
        return _propose_benchmark(segmenter, dataset, settings)


def _propose_benchmark(segmenter: ProposalSegmenter, dataset: SegmentationDataset, settings: EvalConfig) -> pa.Table:
    names = list(dataset.class_names)
    keys = benchmark_keys(dataset, settings)
    text = segmenter.proposer_embeddings(names)
    if segmenter.proposer is None:
        raise ValueError("this segmenter has no proposer: there are no proposer outputs to store")
    queries = segmenter.proposer.config.decoder.num_queries
    if settings.max_proposals is not None:  # the cap keeps that many per image (see ProposalSegmenter.propose)
        queries = min(queries, settings.max_proposals)
    rows: list[dict[str, Any]] = []
    for samples, images in segmented_batches(dataset, keys, settings, f"propose {dataset.name}"):
        for sample, proposals in zip(samples, segmenter.propose_images(images, names, text)):
            rows.extend(image_rows(benchmark_image_name(dataset, sample.key), proposals, names))
    rows.sort(key=lambda row: tuple(row[c] for c in PROPOSALS_SORT_BY))
    info = ProposalsInfo(
        dataset.name,
        names,
        settings.short_side,
        settings.mask_threshold,
        settings.max_images,
        len(keys),
        queries,
        text_fingerprint(text),
        settings.max_proposals,
        settings.precision,
    )
    table = pa.Table.from_pylist(rows, schema=SCHEMA.with_metadata({METADATA_KEY: json.dumps(asdict(info))}))
    check_counts(table, info, "the proposals table")
    return table


def check_counts(table: pa.Table, info: ProposalsInfo, where: str) -> None:
    """Every image once, with ``info.queries`` rows; ``ValueError`` naming the first that is not."""
    counts = table.group_by("file_name").aggregate([("proposal_id", "count")])
    per_image = dict(zip(counts.column("file_name").to_pylist(), counts.column("proposal_id_count").to_pylist()))
    if len(per_image) != info.images:
        raise ValueError(f"{where}: {len(per_image)} images, expected {info.images}")
    wrong = sorted(name for name, count in per_image.items() if count != info.queries)
    if wrong:
        raise ValueError(
            f"{where}: image {wrong[0]!r} has {per_image[wrong[0]]} rows, expected one per query "
            f"({info.queries}); {len(wrong)} such image(s)"
        )


@dataclass(frozen=True)
class StoredProposals:
    """A stored file, read and checked: :meth:`get` gives an image's proposer outputs by benchmark key."""

    path: Path
    info: ProposalsInfo
    dataset: SegmentationDataset
    images: dict[str, tuple[ProposerRow, ...]]

    def get(self, key: str) -> Proposals:
        """Image ``key``'s :class:`Proposals` (batch dimension 1): what the live proposer gives."""
        file_name = benchmark_image_name(self.dataset, key)
        rows = self.images.get(file_name)
        if rows is None:
            raise ValueError(
                f"{self.path}: no proposals for image {file_name!r} (key {key!r}); "
                f"rerun the propose stage for {self.info.benchmark!r}"
            )
        height, width = rows[0].height, rows[0].width
        logits = np.stack([_logits(row, file_name, self.path) for row in rows])
        return Proposals(
            mask_probs=soft_masks(torch.from_numpy(logits)[None], (height, width)),
            class_probs=torch.tensor([row.class_probs for row in rows], dtype=torch.float32)[None],
            scores=torch.tensor([row.score for row in rows], dtype=torch.float32)[None],
            masks=decode_masks(rows, file_name, self.path)[None],
        )

    def check_settings(self, settings: EvalConfig, keys: Sequence[str]) -> None:
        """``ValueError`` unless the file was made with ``settings``' ``short_side``, ``mask_threshold``,
        ``max_proposals`` and ``precision`` and holds every one of ``keys``."""
        for name in ("short_side", "mask_threshold", "max_proposals", "precision"):
            if getattr(self.info, name) != getattr(settings, name):
                raise ValueError(
                    f"{self.path}: proposals made with {name} {getattr(self.info, name)}, the evaluation "
                    f"uses {getattr(settings, name)}; rerun the propose stage"
                )
        missing = [key for key in keys if benchmark_image_name(self.dataset, key) not in self.images]
        if missing:
            raise ValueError(
                f"{self.path}: no proposals for {len(missing)} of the {len(keys)} images evaluated "
                f"(first: {missing[0]!r}); rerun the propose stage"
            )

    def check_text(self, text_emb: torch.Tensor, variant: str) -> None:
        """``ValueError`` unless ``text_emb`` (what ``variant``'s proposer scores against) is what the file's
        proposer scored against: else that variant's proposer classes would differ."""
        if text_fingerprint(text_emb) != self.info.text_sha256:
            raise ValueError(
                f"{self.path}: the proposer's classes were scored against other text embeddings than "
                f"variant {variant!r} gives it (its CLIP's text tower differs from the base CLIP's); "
                "evaluate it without --stored-proposals (the live proposer)"
            )


def _logits(row: ProposerRow, file_name: str, path: Path) -> np.ndarray:
    expected = 4 * row.logits_height * row.logits_width
    if len(row.mask_logits) != expected:
        raise ValueError(
            f"{path}: mask {row.proposal_id} of {file_name!r} has {len(row.mask_logits)} bytes of "
            f"logits, expected {expected} ({row.logits_height}×{row.logits_width} float32)"
        )
    return np.frombuffer(row.mask_logits, dtype="<f4").reshape(row.logits_height, row.logits_width)


def read_info(path: Path) -> ProposalsInfo:
    """The :class:`ProposalsInfo` of a stored file; ``ValueError`` when it has none."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    if METADATA_KEY not in metadata:
        raise ValueError(f"{path}: no {METADATA_KEY.decode()} metadata: not written by the propose stage")
    try:
        return ProposalsInfo(**json.loads(metadata[METADATA_KEY]))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad {METADATA_KEY.decode()} metadata ({exc})") from exc


def read_stored_proposals(path: str | os.PathLike, dataset: SegmentationDataset) -> StoredProposals:
    """Read and check the ``propose`` stage's file for ``dataset``.

    ``FileNotFoundError`` for a missing file; ``ValueError`` naming the file and the problem for
    anything else (another benchmark or class list, wrong counts, a bad column, bad logits or
    class probabilities; masks are checked when decoded).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: stored proposals not found (run `dvc repro propose`, "
            "or evaluate without --stored-proposals: the live proposer)"
        )
    info = read_info(path)
    if info.benchmark != dataset.name or list(info.class_names) != list(dataset.class_names):
        raise ValueError(
            f"{path}: proposals of benchmark {info.benchmark!r} with {len(info.class_names)} classes, "
            f"not of {dataset.name!r} with its {len(dataset.class_names)}"
        )
    stored = read_proposals(path, images_folder(dataset), {**COLUMNS, **OUTPUT_COLUMNS}, ProposerRow)
    rows_by_image = cast(dict[str, tuple[ProposerRow, ...]], stored.images)  # rows of the row_type given
    check_counts(pq.read_table(path, columns=["file_name", "proposal_id"]), info, str(path))
    classes = len(info.class_names)
    for file_name, rows in rows_by_image.items():
        if [row.proposal_id for row in rows] != list(range(info.queries)):
            raise ValueError(f"{path}: image {file_name!r} has proposal ids other than 0..{info.queries - 1}")
        bad = next((row for row in rows if len(row.class_probs) != classes), None)
        if bad is not None:
            raise ValueError(
                f"{path}: mask {bad.proposal_id} of {file_name!r} has {len(bad.class_probs)} class "
                f"probabilities for {classes} classes"
            )
    return StoredProposals(path, info, dataset, rows_by_image)
