"""Image groups and tagged outputs of the Beam jobs."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from pipeline.beam.groups import group_count, group_of, payloads, process_images
from pipeline.beam.shards import shard_of


def test_group_count_is_about_items_per_group_and_at_least_one() -> None:
    assert group_count(0, 256) == 1 and group_count(256, 256) == 1 and group_count(257, 256) == 2


def test_group_of_is_the_crc_shard_of_the_image_id() -> None:
    assert group_of(12345, 7) == shard_of([12345], 7)
    assert {group_of(image_id, 3) for image_id in range(30)} == {0, 1, 2}


def test_payloads_keep_the_tagged_outputs() -> None:
    outputs = [("pair", 1), ("reject", 2), ("pair", 3)]
    assert [p for element in outputs for p in payloads(element, "pair")] == [1, 3]


class _Gather(beam.DoFn):
    def process(self, element):
        group, inputs = element
        yield group, sorted(inputs)


def test_process_images_gives_the_dofn_every_input_of_a_group_at_once() -> None:
    with beam.Pipeline() as pipeline:
        images = pipeline | "Images" >> beam.Create([(0, "image 1"), (1, "image 2")])
        captions = pipeline | "Captions" >> beam.Create([(0, "caption a"), (1, "caption b"), (0, "caption c")])
        groups = process_images((images, captions), _Gather(), "Gather")
        assert_that(groups, equal_to([(0, ["caption a", "caption c", "image 1"]), (1, ["caption b", "image 2"])]))
