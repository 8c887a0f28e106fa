"""Parquet schemas of the mining data (``data/nouns/``, ``data/pairs/``, ``data/rejects/``) and their row orders.

Every table is written by :class:`pipeline.beam.shards.WriteParquetShards`
with one of these fixed schemas: a shard of a table always has the same
columns and types, even when it is empty. ``*_SORT_BY`` are the columns a
shard's rows are sorted by; ``*_SHARD_BY`` the columns that choose the shard.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from core.columns import MASK_FIELDS, required, required_list

#: An (image, noun) and the ids of the image's captions that name the noun (sorted, unique):
#: the key of a nouns row and of the pairs mined from it.
NOUN_OF_IMAGE_FIELDS = (
    required("image_id", pa.int64()),
    required("file_name", pa.string()),
    required("noun", pa.string()),
    required_list("caption_ids", pa.int64()),
)

#: One row per (image, noun): the noun lemma of :mod:`pipeline.nouns.extract`, the ids of
#: the image's captions that mention it (sorted, unique) and its number of
#: mentions over those captions (at least ``len(caption_ids)``).
NOUNS = pa.schema(
    [
        *NOUN_OF_IMAGE_FIELDS,
        required("count", pa.int32()),
    ]
)
NOUNS_SORT_BY = ("image_id", "noun")
# All nouns of one image land in one shard, so a reader can take an image's nouns from one file.
NOUNS_SHARD_BY = ("image_id",)

#: One row per mined (image, noun, mask): the image's best region for a noun of
#: its captions (:mod:`pipeline.mining.job`). ``file_name`` is relative to the
#: world's images folder; ``mask_rle`` holds the COCO RLE ``counts`` string of an
#: ``height`` × ``width`` mask; ``bbox`` is COCO's ``[x, y, w, h]`` of the mask and
#: ``area`` its pixel count; ``proposal_id`` the proposer query and
#: ``proposal_score`` its objectness (1 − p(no object)); ``similarity`` the CLIP
#: cosine of the region's masked crop and the noun, ``softmax`` the noun's share
#: of the region among the image's nouns (temperature: CLIP's logit scale),
#: ``margin`` the similarity minus the noun's runner-up region's (null when the
#: image had one usable region).
PAIRS = pa.schema(
    [
        *NOUN_OF_IMAGE_FIELDS,
        required("noun_count", pa.int32()),
        *MASK_FIELDS,
        required("proposal_id", pa.int32()),
        required("proposal_score", pa.float32()),
        required("similarity", pa.float32()),
        required("softmax", pa.float32()),
        pa.field("margin", pa.float32(), nullable=True),
    ]
)
PAIRS_SORT_BY = ("image_id", "noun")
# All pairs of one image land in one shard (as its nouns do in data/nouns/).
PAIRS_SHARD_BY = ("image_id",)

REJECT_KINDS = ("image", "caption")

#: One row per input that could not be used: which stage refused it, whether
#: it is an image or a caption, its ids where known, a machine-readable
#: ``reason`` and a human-readable ``detail``.
REJECTS = pa.schema(
    [
        required("stage", pa.string()),
        required("kind", pa.string()),
        pa.field("image_id", pa.int64(), nullable=True),
        pa.field("caption_id", pa.int64(), nullable=True),
        pa.field("file_name", pa.string(), nullable=True),
        required("reason", pa.string()),
        required("detail", pa.string()),
    ]
)
REJECTS_SORT_BY = ("stage", "kind", "image_id", "caption_id", "reason")
REJECTS_SHARD_BY = ("stage", "kind", "image_id", "caption_id")


def reject_row(
    stage: str,
    kind: str,
    reason: str,
    *,
    image_id: int | None = None,
    caption_id: int | None = None,
    file_name: str | None = None,
    detail: str = "",
) -> dict[str, Any]:
    """A :data:`REJECTS` row; ``kind`` must be one of :data:`REJECT_KINDS`."""
    if kind not in REJECT_KINDS:
        raise ValueError(f"reject kind must be one of {REJECT_KINDS}, got {kind!r}")
    if not stage or not reason:
        raise ValueError("a reject needs a stage and a reason")
    return {
        "stage": stage,
        "kind": kind,
        "image_id": image_id,
        "caption_id": caption_id,
        "file_name": file_name,
        "reason": reason,
        "detail": detail,
    }


#: The reject reason of a caption whose image id the captions file does not list (``nouns`` and ``mine``).
REASON_UNKNOWN_IMAGE = "unknown_image"


def unknown_image_rejects(stage: str, captions: Iterable[tuple[int, int]]) -> list[dict[str, Any]]:
    """:data:`REASON_UNKNOWN_IMAGE` rejects of ``(caption_id, image_id)`` captions, by caption id."""
    return [
        reject_row(
            stage,
            "caption",
            REASON_UNKNOWN_IMAGE,
            image_id=image_id,
            caption_id=caption_id,
            detail=f"image id {image_id} is not among the captions file's images",
        )
        for caption_id, image_id in sorted(captions)
    ]
