"""Pictures of mined pairs: the crop around a mask, the picks per noun and the contact sheet with verdicts."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest

from pipeline.beam.schemas import PAIRS
from pipeline.mining.pair_pictures import (
    CROP_SIZE,
    RIGHT,
    UNJUDGED,
    WRONG,
    PairJudge,
    contact_sheet,
    pair_crop,
    pick_pairs,
    sheet_judge,
    spread,
)
from pipeline.mining.quality import TruthLabels
from tests.doubles import demo_world, pair_row


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return demo_world(tmp_path_factory.mktemp("sheet_world"), train_images=3)


def test_a_crop_is_the_square_around_the_mask_with_the_outside_dimmed():
    image = np.full((40, 60, 3), 200, np.uint8)
    mask = np.zeros((40, 60), bool)
    mask[10:20, 30:40] = True
    crop = pair_crop(image, mask, size=30)
    assert crop.shape == (30, 30, 3)
    # 10 px box + a quarter on each side = 15 px square, centred on the box, scaled ×2: the mask's middle
    # keeps its colour, the corner (outside the mask) is dimmed, the outline is white.
    assert tuple(crop[15, 15]) == (200, 200, 200) and crop[1, 1].max() < 100
    assert (crop.min(axis=2) > 220).any()  # brighter than the image: the outline
    with pytest.raises(ValueError, match="differ in size"):
        pair_crop(image, mask[:, :10])


def test_a_crop_stays_inside_the_image_when_it_fits():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[0:8, 0:8] = True  # in the corner: the 12 px window moves inside, no grey padding
    crop = pair_crop(image, mask, size=12)
    assert not (crop == 128).all(axis=2).any()


def test_spread_and_picks():
    assert spread(3, 6) == [0, 1, 2] and spread(11, 3) == [0, 5, 10]
    masks = [np.eye(8, dtype=bool)] * 5
    rows = [pair_row(1, "cat", masks[i], 0.1 * i) for i in range(5)] + [pair_row(2, "dog", masks[0], 0.3)]
    groups = pick_pairs(pa.Table.from_pylist(rows, schema=PAIRS), nouns=1, per_noun=2)
    assert [(noun, count, [r["similarity"] for r in picked]) for noun, count, picked in groups] == [
        ("cat", 5, [pytest.approx(0.4), pytest.approx(0.0)])
    ]


def test_the_contact_sheet_marks_each_crop_against_the_truth(world):
    truth = TruthLabels(world)
    label = truth.load("000000000001.jpg")
    present = [int(i) for i in np.unique(label) if i >= 0]
    absent = next(i for i in range(len(world.classes)) if i not in present)
    first, name = present[0], world.classes[present[0]]["name"]
    rows = [
        pair_row(1, name, label == first, 0.9),  # its true segment: right
        pair_row(1, world.classes[absent]["name"], label == first, 0.8),  # a class not in the image: wrong
        pair_row(1, "thing", label == first, 0.7),
    ]  # names no class: not judged
    pairs = pa.Table.from_pylist(rows, schema=PAIRS)
    judge = sheet_judge(world)
    assert isinstance(judge, PairJudge)
    verdicts = [judge.judge(r) for r in rows]
    assert [v.right for v in verdicts] == [True, False, None] and verdicts[0].iou == 1.0
    assert [v.colour for v in verdicts] == [RIGHT, WRONG, UNJUDGED]
    sheet = contact_sheet(pairs, world.images_dir, judge, per_noun=2)
    pixels = np.asarray(sheet)
    assert sheet.width == 130 + 2 * (CROP_SIZE + 6 + 6) + 6
    # Each noun's row has its crop framed by its verdict's colour (rows in pair-count then noun order).
    nouns = sorted(r["noun"] for r in rows)
    frames = [tuple(pixels[2 * 14 + 6 + i * (CROP_SIZE + 6 + 14 + 6) + 1, 131]) for i in range(3)]
    colour_of = {r["noun"]: v.colour for r, v in zip(rows, verdicts)}
    assert frames == [colour_of[noun] for noun in nouns]
    again = io.BytesIO()
    contact_sheet(pairs, world.images_dir, judge, per_noun=2).save(again, format="PNG")
    first_bytes = io.BytesIO()
    sheet.save(first_bytes, format="PNG")
    assert again.getvalue() == first_bytes.getvalue()  # deterministic


def test_without_truth_nothing_is_judged(world):
    rows = [pair_row(1, "cat", np.ones((64, 64), bool), 0.5)]
    sheet = contact_sheet(pa.Table.from_pylist(rows, schema=PAIRS), world.images_dir, None)
    assert tuple(np.asarray(sheet)[2 * 14 + 6 + 1, 131]) == UNJUDGED
    empty = contact_sheet(pa.Table.from_pylist([], schema=PAIRS), world.images_dir, None)
    assert empty.height > 0
