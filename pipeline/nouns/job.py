"""The nouns job: COCO-style captions → per-image nouns (``data/nouns/``) and rejects, on any Beam runner.

Pipeline::

    images (image_id, file_name) ─┐
                                  ├─ key by image group ─ GroupByKey ─ ExtractNouns ─┬─ nouns   ─ WriteParquetShards
    captions (id, image_id, text)─┘  (crc32(image id) % groups of      (spaCy once   └─ rejects ─ WriteParquetShards
                                      ~batch_size captions)             per process, one nlp.pipe per group)

One :data:`pipeline.beam.schemas.NOUNS` row per (image, noun) with the ids of the
captions mentioning it and its number of mentions; rejects
(:data:`pipeline.beam.schemas.REJECTS`, stage ``nouns``):

* caption ``unknown_image``: its image id is not among the file's images;
* caption ``no_noun``: :func:`pipeline.nouns.extract.extract_nouns` found nothing;
* image ``no_caption``: no caption refers to it;
* image ``no_noun``: none of its captions has a noun.

After the pipeline the driver reads both outputs back and reconciles:
captions in = captions with ≥ 1 noun + captions rejected, and images in =
images with ≥ 1 noun row + images rejected, each input exactly once
(:func:`reconcile`); only then do the outputs replace the previous ones.
The output bytes depend only on the captions and the parameters, not on the
runner or the number of workers.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from spacy.language import Language

from core.io import atomic_dir
from pipeline.beam.groups import group_count, group_of, payloads, process_images
from pipeline.beam.reconcile import reconcile
from pipeline.beam.runner import join_branches, run_pipeline
from pipeline.beam.schemas import (
    NOUNS,
    NOUNS_SHARD_BY,
    NOUNS_SORT_BY,
    REJECTS,
    REJECTS_SHARD_BY,
    REJECTS_SORT_BY,
    reject_row,
    unknown_image_rejects,
)
from pipeline.beam.shards import WriteParquetShards, read_shards
from pipeline.datasets.coco import CocoCaptions
from pipeline.nouns.extract import DEFAULT_MAX_COMPOUND_WORDS, load_nlp, make_stoplist, nouns_of_texts

LOG = logging.getLogger(__name__)

STAGE = "nouns"
REASON_NO_CAPTION = "no_caption"
REASON_NO_NOUN = "no_noun"

# Tags of the grouped inputs and of the DoFn's outputs (one main output: see pipeline.beam.runner).
_IMAGE = "image"
_CAPTION = "caption"
_NOUN_ROW = "noun"
_REJECT = "reject"
_DETAIL_TEXT_CHARS = 200
_TOP_NOUNS = 20


@functools.lru_cache(maxsize=4)
def shared_nlp(model_name: str) -> Language:
    """:func:`pipeline.nouns.extract.load_nlp`, once per process (DoFn ``setup()`` runs per Dask partition)."""
    return load_nlp(model_name)


def _quote(text: str) -> str:
    return repr(text if len(text) <= _DETAIL_TEXT_CHARS else text[:_DETAIL_TEXT_CHARS] + "…")


def _orphan_rejects(image_id: int, captions: Sequence[tuple[int, str]]) -> list[dict[str, Any]]:
    """The rejects of the captions of an unknown image, by caption id."""
    return unknown_image_rejects(STAGE, [(caption_id, image_id) for caption_id, _ in captions])


def _tally_nouns(
    image_id: int, file_name: str, captions: Sequence[tuple[int, str]], nouns: Sequence[Sequence[str]]
) -> tuple[dict[str, set[int]], dict[str, int], list[dict[str, Any]]]:
    """Per noun of the image's captions, the ids of the captions naming it and its number of mentions; and the
    rejects of the captions without a noun, by caption id."""
    caption_ids: dict[str, set[int]] = {}
    mentions: dict[str, int] = {}
    rejects = []
    for (caption_id, text), caption_nouns in sorted(zip(captions, nouns), key=lambda pair: pair[0][0]):
        if not caption_nouns:
            rejects.append(
                reject_row(
                    STAGE,
                    "caption",
                    REASON_NO_NOUN,
                    image_id=image_id,
                    caption_id=caption_id,
                    file_name=file_name,
                    detail=f"no noun in {_quote(text)}",
                )
            )
        for noun in caption_nouns:
            caption_ids.setdefault(noun, set()).add(caption_id)
            mentions[noun] = mentions.get(noun, 0) + 1
    return caption_ids, mentions, rejects


def _image_reject(image_id: int, file_name: str, reason: str, detail: str) -> dict[str, Any]:
    """The reject of a whole image."""
    return reject_row(STAGE, "image", reason, image_id=image_id, file_name=file_name, detail=detail)


def image_outputs(
    image_id: int,
    file_name: str | None,
    captions: Sequence[tuple[int, str]],
    nouns: Sequence[Sequence[str]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Noun rows and rejects of one image group (pure).

    ``file_name`` is None when the image id is unknown (its captions are
    orphans); ``captions`` are ``(caption_id, text)`` and ``nouns`` their
    nouns, one list per caption (ignored for orphans). Rows come sorted by
    noun, rejects by caption id.
    """
    if file_name is None:
        return [], _orphan_rejects(image_id, captions)
    if not captions:
        return [], [_image_reject(image_id, file_name, REASON_NO_CAPTION, "no caption refers to this image")]
    if len(nouns) != len(captions):
        raise ValueError(f"image {image_id}: {len(captions)} captions but {len(nouns)} noun lists")
    caption_ids, mentions, rejects = _tally_nouns(image_id, file_name, captions, nouns)
    if not mentions:
        detail = f"none of its {len(captions)} captions has a noun"
        rejects.append(_image_reject(image_id, file_name, REASON_NO_NOUN, detail))
    rows = [
        {
            "image_id": image_id,
            "file_name": file_name,
            "noun": noun,
            "caption_ids": sorted(caption_ids[noun]),
            "count": mentions[noun],
        }
        for noun in sorted(mentions)
    ]
    return rows, rejects


class ExtractNouns(beam.DoFn):
    """``(group, [("image", image_id, file_name) | ("caption", image_id, caption_id, text), …])``
    → ``("noun", row)`` and ``("reject", row)`` pairs.

    spaCy is loaded once per process; the captions of all the group's known
    images are tagged by one ``nlp.pipe`` call, then each image is turned into
    rows and rejects by :func:`image_outputs`.
    """

    def __init__(
        self,
        spacy_model: str,
        stoplist: frozenset[str],
        batch_size: int,
        compounds: bool,
        max_compound_words: int,
    ):
        self._spacy_model = spacy_model
        self._stoplist = stoplist
        self._batch_size = batch_size
        self._compounds = compounds
        self._max_compound_words = max_compound_words
        self._nlp: Language | None = None

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def setup(self) -> None:
        self._nlp = shared_nlp(self._spacy_model)

    def process(self, element: tuple[int, Iterable[tuple]]) -> Iterable[tuple[str, dict[str, Any]]]:
        _, records = element
        file_names: dict[int, list[str]] = {}
        captions: dict[int, list[tuple[int, str]]] = {}
        for record in records:
            if record[0] == _IMAGE:
                file_names.setdefault(record[1], []).append(record[2])
            else:
                captions.setdefault(record[1], []).append((record[2], record[3]))
        for image_id, names in file_names.items():
            if len(names) > 1:
                raise ValueError(f"image id {image_id} appears {len(names)} times among the images")
        image_ids = sorted(set(file_names) | set(captions))
        for image_captions in captions.values():
            image_captions.sort()
        tagged = [image_id for image_id in image_ids if image_id in file_names and image_id in captions]
        texts = [text for image_id in tagged for _, text in captions[image_id]]
        nouns: list[list[str]] = []
        if texts:
            if self._nlp is None:
                raise RuntimeError("ExtractNouns.process() before setup(): the runner did not call setup()")
            nouns = nouns_of_texts(
                self._nlp,
                texts,
                self._stoplist,
                batch_size=self._batch_size,
                compounds=self._compounds,
                max_compound_words=self._max_compound_words,
            )
        start = 0
        nouns_of_image: dict[int, list[list[str]]] = {}
        for image_id in tagged:
            nouns_of_image[image_id] = nouns[start : start + len(captions[image_id])]
            start += len(captions[image_id])
        for image_id in image_ids:
            file_name = file_names[image_id][0] if image_id in file_names else None
            rows, rejects = image_outputs(
                image_id, file_name, captions.get(image_id, []), nouns_of_image.get(image_id, [])
            )
            for row in rows:
                yield _NOUN_ROW, row
            for row in rejects:
                yield _REJECT, row


def _key_image(image: tuple[int, str], num_groups: int) -> tuple[int, tuple]:
    image_id, file_name = image
    return group_of(image_id, num_groups), (_IMAGE, image_id, file_name)


def _key_caption(caption: tuple[int, int, str], num_groups: int) -> tuple[int, tuple]:
    caption_id, image_id, text = caption
    return group_of(image_id, num_groups), (_CAPTION, image_id, caption_id, text)


def _inputs(captions: CocoCaptions) -> tuple[list[tuple[int, str]], list[tuple[int, int, str]]]:
    images = [(image_id, record.file_name) for image_id, record in sorted(captions.images.items())]
    texts = [
        (caption.caption_id, caption.image_id, caption.text)
        for caption in list(captions.all_captions()) + list(captions.orphans)
    ]
    texts.sort()
    return images, texts


def build_nouns_pipeline(
    pipeline: beam.Pipeline,
    captions: CocoCaptions,
    nouns_dir: str | os.PathLike,
    rejects_dir: str | os.PathLike,
    extract: ExtractNouns,
    num_shards: int,
) -> None:
    """Apply the nouns job to ``pipeline``: shards into ``nouns_dir`` and ``rejects_dir``."""
    images, texts = _inputs(captions)
    # About batch_size captions a group: one nlp.pipe call tags a full batch (tagging five captions
    # at a time is about a quarter slower) and the groups still spread over the workers.
    groups = group_count(len(texts), extract.batch_size)
    keyed_images = pipeline | "Images" >> beam.Create(images) | "KeyImages" >> beam.Map(_key_image, groups)
    keyed_captions = pipeline | "Captions" >> beam.Create(texts) | "KeyCaptions" >> beam.Map(_key_caption, groups)
    outputs = process_images((keyed_images, keyed_captions), extract, "ExtractNouns")
    written_nouns = (
        outputs
        | "NounRows" >> beam.FlatMap(payloads, _NOUN_ROW)
        | "WriteNouns" >> WriteParquetShards(nouns_dir, NOUNS, num_shards, NOUNS_SORT_BY, NOUNS_SHARD_BY)
    )
    written_rejects = (
        outputs
        | "Rejects" >> beam.FlatMap(payloads, _REJECT)
        | "WriteRejects" >> WriteParquetShards(rejects_dir, REJECTS, num_shards, REJECTS_SORT_BY, REJECTS_SHARD_BY)
    )
    join_branches([written_nouns, written_rejects])


def _column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist()


def summarise(captions: CocoCaptions, nouns: pa.Table, rejects: pa.Table) -> dict[str, Any]:
    """Reconcile the outputs with the inputs (:func:`reconcile`) and count them."""
    images, texts = _inputs(captions)
    caption_rejects = rejects.filter(pc.equal(rejects["kind"], "caption"))
    image_rejects = rejects.filter(pc.equal(rejects["kind"], "image"))
    used_captions = pc.list_flatten(nouns["caption_ids"]).to_pylist()
    reconcile(
        "captions", [caption_id for caption_id, _, _ in texts], used_captions, _column(caption_rejects, "caption_id")
    )
    reconcile(
        "images", [image_id for image_id, _ in images], _column(nouns, "image_id"), _column(image_rejects, "image_id")
    )

    by_reason: dict[str, int] = {}
    for kind, reason in zip(_column(rejects, "kind"), _column(rejects, "reason")):
        by_reason[f"{kind}/{reason}"] = by_reason.get(f"{kind}/{reason}", 0) + 1
    images_per_noun: dict[str, int] = {}
    for noun in _column(nouns, "noun"):
        images_per_noun[noun] = images_per_noun.get(noun, 0) + 1
    top = sorted(images_per_noun.items(), key=lambda item: (-item[1], item[0]))[:_TOP_NOUNS]
    return {
        "images": len(images),
        "captions": len(texts),
        "images_with_nouns": len(set(_column(nouns, "image_id"))),
        "captions_with_nouns": len(set(used_captions)),
        "noun_rows": nouns.num_rows,
        "noun_mentions": int(pc.sum(nouns["count"]).as_py() or 0),
        "unique_nouns": len(images_per_noun),
        "rejects": dict(sorted(by_reason.items())),
        "top_nouns": [{"noun": noun, "images": count} for noun, count in top],
    }


def run_nouns_job(
    captions: CocoCaptions,
    out_dir: str | os.PathLike,
    rejects_dir: str | os.PathLike,
    *,
    spacy_model: str,
    stoplist: Iterable[str],
    num_shards: int,
    runner_cfg: Mapping[str, Any] | None,
    batch_size: int = 256,
    compounds: bool = True,
    max_compound_words: int = DEFAULT_MAX_COMPOUND_WORDS,
) -> dict[str, Any]:
    """Run the nouns job and replace ``out_dir`` and ``rejects_dir`` atomically.

    Returns the counts of :func:`summarise`. Raises :class:`ReconciliationError`
    (outputs left untouched) when the outputs do not account for every input,
    ``RuntimeError`` when the spaCy model cannot be loaded or the pipeline fails.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be positive, got {num_shards}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if max_compound_words < 2:
        raise ValueError(f"max_compound_words must be at least 2, got {max_compound_words}")
    stopwords = make_stoplist(stoplist)
    shared_nlp(spacy_model)  # fail here, with the model's name, rather than inside a worker
    extract = ExtractNouns(spacy_model, stopwords, batch_size, compounds, max_compound_words)
    with atomic_dir(out_dir) as nouns_stage, atomic_dir(rejects_dir) as rejects_stage:
        LOG.info(
            "nouns: %d images, %d captions (+%d of unknown images) on runner %s",
            len(captions.images),
            sum(len(c) for c in captions.captions.values()),
            len(captions.orphans),
            dict(runner_cfg or {}).get("runner", "direct"),
        )
        run_pipeline(
            lambda pipeline: build_nouns_pipeline(pipeline, captions, nouns_stage, rejects_stage, extract, num_shards),
            runner_cfg,
        )
        nouns = read_shards(nouns_stage, NOUNS)
        rejects = read_shards(rejects_stage, REJECTS)
        counts = summarise(captions, nouns, rejects)
        LOG.info(
            "nouns: %d rows, %d unique nouns, rejects %s; writing %s and %s",
            counts["noun_rows"],
            counts["unique_nouns"],
            counts["rejects"],
            Path(out_dir),
            Path(rejects_dir),
        )
    return counts
