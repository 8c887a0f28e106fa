"""The ``prepare`` params section (and the ``data`` keys the stage reads), parsed strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.prepare.config import RAW_OF, PrepareConfig
from pipeline.prepare.records import EXPECTED_IMAGES

DATA = {
    "source": "coco",
    "benchmarks": ["voc20", "ade847"],
    "real": {"coco_root": "/data/coco", "images": "train2017", "labels": "stuffthingmaps/train2017"},
}
PREPARE = {
    "raw": {"ade847": "/raw/ADE20K_2021_17_01", "voc20": "/raw/VOC2012"},
    "num_shards": 3,
    "runner": {"runner": "direct-inmemory"},
}


def test_a_coco_section_is_read_with_its_defaults() -> None:
    config = PrepareConfig.from_params(PREPARE, DATA)
    assert config.active and config.prepared_sets() == ["ade847", "voc20", "coco_stuff171"]
    assert config.raw_root("ade847") == Path("/raw/ADE20K_2021_17_01")
    assert config.coco_labels == Path("/data/coco/stuffthingmaps/train2017")
    assert config.options.ade847_max_short_side == 512 and config.options.jpeg_quality == 95
    assert not config.allow_partial and config.num_shards == 3
    assert set(RAW_OF) | {"coco_stuff171"} == set(EXPECTED_IMAGES)


def test_the_demo_is_inactive_and_needs_no_paths() -> None:
    config = PrepareConfig.from_params({"raw": {}}, {"source": "demo", "benchmarks": ["demo"]})
    assert not config.active and config.benchmarks == ("demo",)


@pytest.mark.parametrize(
    ("prepare", "data", "message"),
    [
        ({**PREPARE, "jpeg_qualty": 90}, DATA, r"prepare: unknown keys \['jpeg_qualty'\]"),
        ({**PREPARE, "raw": {"ade20k": "/x"}}, DATA, r"prepare.raw: unknown keys \['ade20k'\]"),
        ({**PREPARE, "jpeg_quality": 0}, DATA, "jpeg_quality must be an integer in 1..100"),
        ({**PREPARE, "ade847_max_short_side": 0}, DATA, "ade847_max_short_side must be a positive integer or null"),
        ({**PREPARE, "allow_partial": "yes"}, DATA, "allow_partial must be true or false"),
        ({**PREPARE, "num_shards": 0}, DATA, "num_shards must be a positive integer"),
        (PREPARE, {**DATA, "benchmarks": ["demo"]}, r"data.benchmarks: \['demo'\] cannot be prepared"),
        (PREPARE, {**DATA, "real": {}}, r"data.real: missing keys \['coco_root', 'images', 'labels'\]"),
        (PREPARE, {**DATA, "source": "imagenet"}, "data.source must be 'demo' or 'coco'"),
    ],
)
def test_bad_params_are_refused_naming_the_key(prepare, data, message) -> None:
    with pytest.raises(ValueError, match=message):
        PrepareConfig.from_params(prepare, data)


def test_a_benchmark_without_a_download_folder_is_named() -> None:
    config = PrepareConfig.from_params(PREPARE, {**DATA, "benchmarks": ["pc59"]})
    with pytest.raises(ValueError, match=r"prepare.raw.pascal_context: no folder for benchmark pc59"):
        config.raw_root("pc59")
