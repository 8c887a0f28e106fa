"""The Beam side of mining: keying inputs by image group, reading noun shards, the mining DoFn.

Images are grouped by ``crc32(image id) % groups`` (stable across processes
and runners), so one ``process()`` call mines a fixed set of images: about
``images_per_batch`` of them, which share proposer batches. Everything is done
inside ``process()``, nothing in ``finish_bundle`` (Beam's DaskRunner drops
what it emits), and the DoFn emits ``(tag, row)`` pairs on its one main output
(see :mod:`pipeline.beam.runner` for why not tagged outputs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from core.device import set_threads
from pipeline.beam.groups import group_of
from pipeline.beam.schemas import NOUNS
from pipeline.mining.accounting import ImageInput, NounEntry, caption_rejects, image_reject, precheck
from pipeline.mining.config import MiningConfig
from pipeline.mining.image_io import ImageProblem, load_image
from pipeline.mining.miner import ImageToMine, mine_images
from pipeline.mining.models import MiningModels, shared_models

PAIR = "pair"
REJECT = "reject"
_IMAGE = "image"
_NOUN = "noun"
_READ_BATCH_ROWS = 65_536


def key_image(image: ImageInput, num_groups: int) -> tuple[int, tuple]:
    return group_of(image.image_id, num_groups), (_IMAGE, image)


def read_noun_shard(path: str, num_groups: int) -> Iterator[tuple[int, tuple]]:
    """The rows of one ``data/nouns/`` shard (read through Beam's FileSystems), keyed by image group."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        shard = pq.ParquetFile(pa.BufferReader(handle.read()))
    if not shard.schema_arrow.equals(NOUNS, check_metadata=False):
        raise ValueError(f"{path}: schema {shard.schema_arrow} differs from the nouns schema {NOUNS}")
    for batch in shard.iter_batches(batch_size=_READ_BATCH_ROWS):
        for row in batch.to_pylist():
            entry = NounEntry(row["noun"], tuple(row["caption_ids"]), int(row["count"]))
            yield group_of(row["image_id"], num_groups), (_NOUN, row["image_id"], entry)


def split_group(records: Iterable[tuple]) -> tuple[dict[int, ImageInput], dict[int, tuple[NounEntry, ...]]]:
    """A group's records → images by id and their nouns sorted by noun; duplicates raise ``ValueError``."""
    images: dict[int, ImageInput] = {}
    nouns: dict[int, list[NounEntry]] = {}
    for record in records:
        if record[0] == _IMAGE:
            image = record[1]
            if image.image_id in images:
                raise ValueError(f"image id {image.image_id} appears twice among the images")
            images[image.image_id] = image
        else:
            nouns.setdefault(record[1], []).append(record[2])
    unknown = sorted(set(nouns) - set(images))
    if unknown:
        raise ValueError(f"data/nouns rows for image ids that the captions file does not list: {unknown[:5]}")
    sorted_nouns = {}
    for image_id, entries in nouns.items():
        entries.sort(key=lambda entry: entry.noun)
        names = [entry.noun for entry in entries]
        if len(set(names)) != len(names):
            raise ValueError(f"image {image_id}: a noun appears twice among its data/nouns rows")
        sorted_nouns[image_id] = tuple(entries)
    return images, sorted_nouns


def mine_group(
    models: MiningModels | None,
    images: Mapping[int, ImageInput],
    nouns: Mapping[int, Sequence[NounEntry]],
    settings: MiningConfig,
) -> list[tuple[str, dict[str, Any]]]:
    """``(tag, row)`` outputs of a group of images: pairs and rejects (see :mod:`pipeline.mining.accounting`).

    ``models`` may be None when no image of the group gets as far as the models.
    """
    outputs: list[tuple[str, dict[str, Any]]] = []
    to_mine: list[ImageToMine] = []
    for image_id in sorted(images):
        image = images[image_id]
        entries = tuple(nouns.get(image_id, ()))
        reject = precheck(image, entries)
        if reject is not None:
            outputs.append((REJECT, reject))
            continue
        pixels = load_image(image.path, max_pixels=settings.max_pixels, expected_size=(image.height, image.width))
        if isinstance(pixels, ImageProblem):
            outputs.append((REJECT, image_reject(image, pixels.reason, pixels.detail)))
            continue
        to_mine.append(ImageToMine(image, pixels, entries))
    if to_mine:
        if models is None:
            raise RuntimeError("mine_group: images to mine but no models (the DoFn's setup() did not run)")
        for mined in mine_images(models, to_mine, settings):
            if mined.problem is not None:
                outputs.append((REJECT, image_reject(mined.image, mined.problem.reason, mined.problem.detail)))
                continue
            outputs.extend((PAIR, row) for row in mined.pairs)
            entries = tuple(nouns[mined.image.image_id])
            outputs.extend((REJECT, row) for row in caption_rejects(mined.image, entries, mined.pairs))
    return outputs


class MineImages(beam.DoFn):
    """``(group, [("image", ImageInput) | ("noun", image_id, NounEntry), …])`` → ``("pair" | "reject", row)``.

    ``setup()`` sets the process's torch threads to ``settings.threads`` and
    takes the models from the per-process cache (:func:`pipeline.mining.models.shared_models`).
    """

    def __init__(self, proposer_dir: str, clip_dir: str, settings: MiningConfig):
        self._proposer_dir = str(proposer_dir)
        self._clip_dir = str(clip_dir)
        self._settings = settings
        self._models: MiningModels | None = None

    @property
    def settings(self) -> MiningConfig:
        return self._settings

    def setup(self) -> None:
        set_threads(self._settings.threads, "mine.threads")
        self._models = shared_models(self._proposer_dir, self._clip_dir, self._settings.device)

    def process(self, element: tuple[int, Iterable[tuple]]) -> Iterator[tuple[str, dict[str, Any]]]:
        _, records = element
        images, nouns = split_group(records)
        yield from mine_group(self._models, images, nouns, self._settings)
