"""Which inputs the mining job rejects, and why: every image and caption of the captions file, once.

The job re-derives from its own inputs (the captions file and ``data/nouns/``)
everything the nouns stage already refused, so that ``data/rejects/mine/``
alone, with ``data/pairs/``, accounts for every input:

Images (kind ``image``), the first reason that applies:

1. ``no_caption``: no caption refers to it;
2. ``no_noun``: none of its captions has a noun (``data/nouns/`` has no row for it);
3. ``missing``, ``unreadable``, ``empty_file``, ``oversized``, ``undecodable``,
   ``size_mismatch``: the file (:mod:`pipeline.mining.image_io`);
4. ``no_proposal``: no proposal survives the region filters;
5. ``no_pair``: every noun's best region is filtered out.

A rejected image accounts for its captions. Captions of an image with pairs
(kind ``caption``) are used when some pair lists them in ``caption_ids``,
otherwise rejected as ``no_noun`` (the caption has no noun) or ``no_pair``
(its nouns' pairs were all filtered out). A caption whose image id is not in
the file is rejected as ``unknown_image``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.beam.schemas import reject_row, unknown_image_rejects

STAGE = "mine"
REASON_NO_CAPTION = "no_caption"
REASON_NO_NOUN = "no_noun"
REASON_NO_PROPOSAL = "no_proposal"
REASON_NO_PAIR = "no_pair"


@dataclass(frozen=True)
class ImageInput:
    """One image record of the captions file: ids, file (name relative to the images
    folder, and the resolved path or URL to read), size from the file, its caption ids."""

    image_id: int
    file_name: str
    path: str
    height: int
    width: int
    caption_ids: tuple[int, ...]


@dataclass(frozen=True)
class NounEntry:
    """One ``data/nouns/`` row of an image: the noun, the captions mentioning it, its mentions."""

    noun: str
    caption_ids: tuple[int, ...]
    count: int


def image_reject(image: ImageInput, reason: str, detail: str) -> dict[str, Any]:
    """A ``kind=image`` reject row of this stage."""
    return reject_row(STAGE, "image", reason, image_id=image.image_id, file_name=image.file_name, detail=detail)


def precheck(image: ImageInput, nouns: Sequence[NounEntry]) -> dict[str, Any] | None:
    """The reject of an image that cannot be mined whatever its file holds, or None."""
    if not image.caption_ids:
        return image_reject(image, REASON_NO_CAPTION, "no caption refers to this image")
    if not nouns:
        return image_reject(
            image, REASON_NO_NOUN, f"none of its {len(image.caption_ids)} captions has a noun (no data/nouns row)"
        )
    return None


def caption_rejects(
    image: ImageInput, nouns: Sequence[NounEntry], pairs: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Rejects of the captions of an image with pairs that no pair uses, by caption id."""
    used = {caption_id for pair in pairs for caption_id in pair["caption_ids"]}
    with_nouns = {caption_id for entry in nouns for caption_id in entry.caption_ids}
    rejects = []
    for caption_id in sorted(set(image.caption_ids) - used):
        if caption_id in with_nouns:
            reason, detail = REASON_NO_PAIR, "every noun of this caption was filtered out of the image's pairs"
        else:
            reason, detail = REASON_NO_NOUN, "this caption has no noun"
        rejects.append(
            reject_row(
                STAGE,
                "caption",
                reason,
                image_id=image.image_id,
                caption_id=caption_id,
                file_name=image.file_name,
                detail=detail,
            )
        )
    return rejects


def orphan_rejects(orphans: Iterable[tuple[int, int]]) -> list[dict[str, Any]]:
    """``unknown_image`` rejects of ``(caption_id, image_id)`` captions whose image is not in the file."""
    return unknown_image_rejects(STAGE, orphans)
