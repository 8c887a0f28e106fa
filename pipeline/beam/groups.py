"""How the Beam jobs route their data: inputs keyed by image group, outputs tagged by kind.

A job keys every input of an image by the image's group (:func:`group_of`, stable across
processes), groups by key so that one ``DoFn`` call sees whole images (:func:`process_images`), and emits
``(tag, payload)`` pairs that :func:`payloads` splits into the tables it writes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import apache_beam as beam

from pipeline.beam.shards import shard_of


def group_count(num_items: int, items_per_group: int) -> int:
    """Number of groups: about ``items_per_group`` inputs (images, captions, items) each, at least one."""
    return max(1, math.ceil(num_items / items_per_group))


def group_of(image_id: int, num_groups: int) -> int:
    """The group of an image: CRC-32 of its id (stable across processes), mod ``num_groups``."""
    return shard_of([image_id], num_groups)


def process_images(keyed_inputs: tuple[beam.PCollection, ...], dofn: beam.DoFn, label: str) -> beam.PCollection:
    """``dofn`` (the step ``label``) over whole image groups: the keyed inputs flattened, then grouped by key."""
    return keyed_inputs | "Inputs" >> beam.Flatten() | "GroupImages" >> beam.GroupByKey() | label >> beam.ParDo(dofn)


def payloads(element: tuple[str, Any], tag: str) -> Iterable[Any]:
    """The payload of a ``(tag, payload)`` output when its tag is ``tag`` (for ``beam.FlatMap``)."""
    if element[0] == tag:
        yield element[1]
