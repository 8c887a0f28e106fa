"""The mining job: (image, nouns) → (image, noun, mask) pairs (``data/pairs/``) and rejects, on any Beam runner.

Pipeline::

    captions file images ─ key by image group ─┐
    data/nouns shards ─ read (FileSystems) ─ key ┴─ GroupByKey ─ MineImages ─┬─ pairs   ─ WriteParquetShards
                                                   (crc32(id) % groups of     └─ rejects ─┐
    captions of unknown images ─ rejects ───────────  ~images_per_batch)                  ├─ WriteParquetShards
                                                                                          ┘

``MineImages`` (:mod:`pipeline.mining.dofn`) reads and decodes each image
(Beam's FileSystems, PIL), runs the proposer (loaded once per worker process)
on batches of same-size images, crops every usable region of an image and
encodes the crops with CLIP in one batch, and keeps for every noun of the
image's captions its best region (:mod:`pipeline.mining.matching`), subject
to the filters of :class:`pipeline.mining.config.MiningConfig`.

Outputs: :data:`pipeline.beam.schemas.PAIRS` shards sorted by (image id, noun) and
sharded by image id, and :data:`pipeline.beam.schemas.REJECTS` shards of stage
``mine`` (reasons: :mod:`pipeline.mining.accounting`). After the pipeline the
driver reads both back and reconciles (:func:`summarise`): every image of the
captions file is in the pairs or rejected, every caption is used by a pair,
rejected, or belongs to a rejected image — each exactly once. Only then do the
outputs replace the previous ones, together. The bytes depend only on the
inputs, the models and the parameters, not on the runner or the worker count.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.io import atomic_dir
from pipeline.beam.groups import group_count, payloads, process_images
from pipeline.beam.reconcile import ReconciliationError, reconcile
from pipeline.beam.runner import join_branches, run_pipeline
from pipeline.beam.schemas import PAIRS, PAIRS_SHARD_BY, PAIRS_SORT_BY, REJECTS, REJECTS_SHARD_BY, REJECTS_SORT_BY
from pipeline.beam.shards import WriteParquetShards, read_shards, shard_paths
from pipeline.datasets.coco import CocoCaptions
from pipeline.mining.accounting import ImageInput, orphan_rejects
from pipeline.mining.config import MiningConfig
from pipeline.mining.dofn import PAIR, REJECT, MineImages, key_image, read_noun_shard
from pipeline.mining.models import shared_models

LOG = logging.getLogger(__name__)

__all__ = ["MineOutputs", "ReconciliationError", "build_mine_pipeline", "image_inputs", "run_mine_job", "summarise"]

_TOP_NOUNS = 20
_DIGITS = 4


@dataclass(frozen=True)
class MineOutputs:
    """What a finished job wrote (and now holds in ``pairs_dir``/``rejects_dir``) and its counts."""

    pairs: pa.Table
    rejects: pa.Table
    counts: dict[str, Any]


def image_inputs(captions: CocoCaptions) -> list[ImageInput]:
    """One :class:`ImageInput` per image of the captions file, by id (paths already confined by the reader)."""
    return [
        ImageInput(
            image_id=image_id,
            file_name=record.file_name,
            path=str(record.path),
            height=record.height,
            width=record.width,
            caption_ids=tuple(caption.caption_id for caption in captions.captions.get(image_id, ())),
        )
        for image_id, record in sorted(captions.images.items())
    ]


def check_nouns(nouns_dir: str | os.PathLike, captions: CocoCaptions) -> list[str]:
    """The shard paths of ``nouns_dir`` after checking that they describe the captions file's images.

    Raises ``ValueError`` naming the folder when a row's image id is not in the
    captions file or its file name differs (the nouns are stale: rerun the nouns stage).
    """
    paths = shard_paths(nouns_dir)
    for path in paths:
        table = pq.read_table(path, columns=["image_id", "file_name"])
        pairs = table.group_by(["image_id", "file_name"]).aggregate([]).to_pylist()
        for row in pairs:
            record = captions.images.get(row["image_id"])
            if record is None:
                raise ValueError(
                    f"{path}: rows for image id {row['image_id']}, which the captions file does not list "
                    "(stale nouns: rerun the nouns stage)"
                )
            if record.file_name != row["file_name"]:
                raise ValueError(
                    f"{path}: image id {row['image_id']} has file {row['file_name']!r}, the captions file says "
                    f"{record.file_name!r} (stale nouns: rerun the nouns stage)"
                )
    return [str(path) for path in paths]


def build_mine_pipeline(
    pipeline: beam.Pipeline,
    images: Sequence[ImageInput],
    orphans: Sequence[tuple[int, int]],
    noun_shards: Sequence[str],
    pairs_dir: str | os.PathLike,
    rejects_dir: str | os.PathLike,
    mine: MineImages,
    num_shards: int,
) -> None:
    """Apply the mining job to ``pipeline``: shards into ``pairs_dir`` and ``rejects_dir``.

    ``orphans`` are ``(caption_id, image_id)`` of captions whose image is not in the file.
    """
    groups = group_count(len(images), mine.settings.images_per_batch)
    keyed_images = pipeline | "Images" >> beam.Create(list(images)) | "KeyImages" >> beam.Map(key_image, groups)
    keyed_nouns = (
        pipeline | "NounShards" >> beam.Create(list(noun_shards)) | "ReadNouns" >> beam.FlatMap(read_noun_shard, groups)
    )
    outputs = process_images((keyed_images, keyed_nouns), mine, "MineImages")
    written_pairs = (
        outputs
        | "Pairs" >> beam.FlatMap(payloads, PAIR)
        | "WritePairs" >> WriteParquetShards(pairs_dir, PAIRS, num_shards, PAIRS_SORT_BY, PAIRS_SHARD_BY)
    )
    orphan_rows = pipeline | "OrphanCaptions" >> beam.Create(orphan_rejects(orphans))
    written_rejects = (
        (outputs | "Rejects" >> beam.FlatMap(payloads, REJECT), orphan_rows)
        | "AllRejects" >> beam.Flatten()
        | "WriteRejects" >> WriteParquetShards(rejects_dir, REJECTS, num_shards, REJECTS_SORT_BY, REJECTS_SHARD_BY)
    )
    join_branches([written_pairs, written_rejects])


def _column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist()


def _distribution(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    array = np.asarray(values, dtype=np.float64)
    quantiles = np.quantile(array, [0.1, 0.5, 0.9])
    return {
        "mean": round(float(array.mean()), _DIGITS),
        "p10": round(float(quantiles[0]), _DIGITS),
        "p50": round(float(quantiles[1]), _DIGITS),
        "p90": round(float(quantiles[2]), _DIGITS),
    }


def noun_frequencies(pairs: pa.Table) -> list[tuple[str, int]]:
    """``(noun, pairs)`` for every mined noun, most pairs first (ties by noun)."""
    counts = Counter(_column(pairs, "noun"))
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def summarise(captions: CocoCaptions, pairs: pa.Table, rejects: pa.Table) -> dict[str, Any]:
    """Reconcile the outputs with the inputs and count them (deterministic values only).

    Images: in = with pairs + rejected. Captions: in = used by a pair + rejected
    as captions + captions of rejected images, each exactly once. Raises
    :class:`pipeline.nouns.job.ReconciliationError` otherwise.
    """
    images = image_inputs(captions)
    captions_of = {image.image_id: image.caption_ids for image in images}
    orphan_ids = [caption.caption_id for caption in captions.orphans]
    caption_ids_in = [caption_id for image in images for caption_id in image.caption_ids] + orphan_ids

    kinds = rejects.column("kind")
    image_rejects = rejects.filter(pc.equal(kinds, "image"))
    caption_rejects = rejects.filter(pc.equal(kinds, "caption"))
    rejected_images = _column(image_rejects, "image_id")
    reconcile("images", list(captions_of), _column(pairs, "image_id"), rejected_images)
    used_captions = pc.list_flatten(pairs["caption_ids"]).to_pylist()
    covered = [caption_id for image_id in rejected_images for caption_id in captions_of.get(image_id, ())]
    reconcile("captions", caption_ids_in, used_captions, _column(caption_rejects, "caption_id") + covered)

    by_reason = Counter(
        f"{kind}/{reason}" for kind, reason in zip(_column(rejects, "kind"), _column(rejects, "reason"))
    )
    frequencies = noun_frequencies(pairs)
    images_with_pairs = len(set(_column(pairs, "image_id")))
    margins = [value for value in _column(pairs, "margin") if value is not None]
    return {
        "images": len(images),
        "captions": len(caption_ids_in),
        "images_with_pairs": images_with_pairs,
        "captions_used": len(set(used_captions)),
        "pairs": pairs.num_rows,
        "unique_nouns": len(frequencies),
        "pairs_per_image": round(pairs.num_rows / images_with_pairs, _DIGITS) if images_with_pairs else 0.0,
        "rejects": dict(sorted(by_reason.items())),
        "similarity": _distribution(_column(pairs, "similarity")),
        "softmax": _distribution(_column(pairs, "softmax")),
        "margin": _distribution(margins),
        "pairs_without_margin": pairs.num_rows - len(margins),
        "top_nouns": [{"noun": noun, "pairs": count} for noun, count in frequencies[:_TOP_NOUNS]],
    }


def run_mine_job(
    captions: CocoCaptions,
    nouns_dir: str | os.PathLike,
    pairs_dir: str | os.PathLike,
    rejects_dir: str | os.PathLike,
    *,
    proposer_dir: str | os.PathLike,
    clip_dir: str | os.PathLike,
    settings: MiningConfig,
    num_shards: int,
    runner_cfg: Mapping[str, Any] | None,
) -> MineOutputs:
    """Run the mining job and replace ``pairs_dir`` and ``rejects_dir`` together once it reconciles.

    Raises ``FileNotFoundError``/``ValueError`` naming the input for missing or
    stale nouns and unusable model folders (before any work),
    :class:`pipeline.nouns.job.ReconciliationError` (outputs untouched) when
    the outputs do not account for every input, ``RuntimeError`` when the
    pipeline fails.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be positive, got {num_shards}")
    noun_shards = check_nouns(nouns_dir, captions)
    # Load the models here first: a bad folder fails in the driver, naming it, rather than in
    # a worker; an in-memory runner then reuses them (the cache is per process).
    shared_models(proposer_dir, clip_dir, settings.device)
    images = image_inputs(captions)
    orphans = [(caption.caption_id, caption.image_id) for caption in captions.orphans]
    mine = MineImages(str(Path(proposer_dir).resolve()), str(Path(clip_dir).resolve()), settings)
    with atomic_dir(pairs_dir) as pairs_stage, atomic_dir(rejects_dir) as rejects_stage:
        LOG.info(
            "mine: %d images, %d noun shards, runner %s, device %s",
            len(images),
            len(noun_shards),
            dict(runner_cfg or {}).get("runner", "direct"),
            settings.device,
        )
        run_pipeline(
            lambda pipeline: build_mine_pipeline(
                pipeline, images, orphans, noun_shards, pairs_stage, rejects_stage, mine, num_shards
            ),
            runner_cfg,
        )
        pairs = read_shards(pairs_stage, PAIRS)
        rejects = read_shards(rejects_stage, REJECTS)
        counts = summarise(captions, pairs, rejects)
        LOG.info(
            "mine: %d pairs of %d images, rejects %s", counts["pairs"], counts["images_with_pairs"], counts["rejects"]
        )
    return MineOutputs(pairs=pairs, rejects=rejects, counts=counts)
