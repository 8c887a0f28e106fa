"""Label arrays: ADE's R/G decoding, value tables, detectron2's resize rule, nearest resizing, encodings."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.datasets.files import read_label
from pipeline.prepare.label_maps import (
    IGNORE,
    decode_ade_rgb,
    encode_png,
    encode_tiff16,
    label_stats,
    resize_nearest,
    short_side_size,
    to_classes,
    to_stored,
    value_table,
)
from pipeline.prepare.records import Rejected


def test_ade_classes_are_r_over_10_times_256_plus_g() -> None:
    seg = np.array([[[0, 0, 0], [10, 1, 9], [119, 255, 0], [250, 0, 3]]], dtype=np.uint8)
    assert decode_ade_rgb(seg).tolist() == [[0, 257, 11 * 256 + 255, 25 * 256]]


def test_value_tables_map_known_values_and_refuse_the_others() -> None:
    table = value_table({0: IGNORE, 1: 0, 2: 1}, 4)
    assert to_classes(np.array([[0, 1, 2]]), table, "x.png").tolist() == [[-1, 0, 1]]
    with pytest.raises(Rejected, match=r"x.png: label values \[3\] are no class") as info:
        to_classes(np.array([[1, 3]]), table, "x.png")
    assert info.value.reason == "out_of_range"
    with pytest.raises(Rejected, match=r"label values \[7, 9\] outside 0..3"):
        to_classes(np.array([[7, 9, 1]]), table, "x.png")


@pytest.mark.parametrize(
    ("size", "limit", "expected"),
    [
        ((683, 512), 512, (683, 512)),  # shorter side already 512
        ((600, 800), 512, (512, 683)),  # landscape: round(800 / 600 * 512) = 683
        ((2000, 1500), 512, (683, 512)),  # portrait
        ((300, 4000), 512, (300, 4000)),  # shorter side below the limit: kept
        ((900, 900), 512, (512, 512)),
        ((900, 1200), None, (900, 1200)),  # no limit
    ],
)
def test_short_side_rule_is_detectron2s(size, limit, expected) -> None:
    assert short_side_size(*size, limit) == expected


def test_nearest_resize_samples_pixel_centres() -> None:
    label = np.arange(16).reshape(4, 4)
    assert resize_nearest(label, 2, 2).tolist() == [[5, 7], [13, 15]]
    assert resize_nearest(label, 4, 4).tolist() == label.tolist()
    assert resize_nearest(np.array([[1, 2]]), 1, 4).tolist() == [[1, 1, 2, 2]]


def test_stats_and_stored_values() -> None:
    classes = np.array([[IGNORE, 3, 3], [0, IGNORE, 846]], dtype=np.int32)
    assert label_stats(classes) == (2, [0, 3, 846])
    assert to_stored(classes, 65535, np.uint16).tolist() == [[65535, 3, 3], [0, 65535, 846]]
    with pytest.raises(ValueError, match="does not fit uint8"):
        to_stored(classes, 255, np.uint8)


def test_encodings_round_trip_through_the_readers_and_are_deterministic(tmp_path) -> None:
    label16 = (np.arange(12 * 7).reshape(12, 7) * 700 % 65536).astype(np.uint16)
    label8 = (np.arange(12 * 7).reshape(12, 7) % 256).astype(np.uint8)
    for data, array, suffix in ((encode_tiff16(label16), label16, ".tif"), (encode_png(label8), label8, ".png")):
        path = tmp_path / f"label{suffix}"
        path.write_bytes(data)
        assert np.array_equal(read_label(path), array)
    assert encode_tiff16(label16) == encode_tiff16(label16.copy())
    assert Image.open(io.BytesIO(encode_tiff16(label16))).mode == "I;16"
    with pytest.raises(ValueError, match="uint16"):
        encode_tiff16(label8)
