"""Palette, overlays, legends and comparison sheets."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation.label_overlay import (
    IGNORE_COLOUR,
    LEGEND_WIDTH,
    PADDING,
    ROW_HEIGHT,
    SWATCH,
    blend,
    class_colour,
    colorize,
    comparison_sheet,
    fit_text,
    font,
    legend,
    legend_height,
    palette,
    row_legend,
    sheet_classes,
    with_legend,
)


def test_palette_is_fixed_and_distinct():
    colours = palette(60)
    assert colours.shape == (60, 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours.tolist()}) == 60
    assert tuple(colours[7]) == class_colour(7)
    assert class_colour(-1) == IGNORE_COLOUR


def test_colorize_and_blend_leave_unlabelled_pixels_alone():
    labels = np.array([[0, 1], [-1, 2]], np.int32)
    colours = colorize(labels, 3)
    assert tuple(colours[1, 0]) == IGNORE_COLOUR and tuple(colours[0, 1]) == class_colour(1)
    image = np.full((2, 2, 3), 100, np.uint8)
    mixed = blend(image, labels, 3, alpha=1.0)
    assert tuple(mixed[1, 0]) == (100, 100, 100)
    assert tuple(mixed[1, 1]) == class_colour(2)
    assert np.array_equal(blend(image, labels, 3, alpha=0.0), image)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([[0, 3]]), "labels must lie in -1..2"),
        (np.array([[-2, 0]]), "labels must lie in -1..2"),
        (np.zeros((2, 2), np.float32), "integer"),
        (np.zeros((2,), np.int32), "integer H×W"),
    ],
)
def test_bad_labels_are_refused(labels, message):
    with pytest.raises(ValueError, match=message):
        colorize(labels, 3)


def test_blend_refuses_mismatched_sizes():
    with pytest.raises(ValueError, match="differ in size"):
        blend(np.zeros((2, 3, 3), np.uint8), np.zeros((3, 2), np.int32), 2)


def test_legend_lists_entries_and_says_how_many_did_not_fit():
    entries = [(i, f"class {i}") for i in range(10)]
    full = legend(entries)
    assert full.size == (LEGEND_WIDTH, legend_height(10))
    short = legend(entries, height=2 * PADDING + 4 * ROW_HEIGHT)  # room for 3 entries and "… 7 more"
    assert short.size == (LEGEND_WIDTH, 2 * PADDING + 4 * ROW_HEIGHT)
    pixels = np.asarray(short)
    swatch_rows = [pixels[PADDING + r * ROW_HEIGHT + ROW_HEIGHT // 2, PADDING + SWATCH // 2] for r in range(4)]
    assert [tuple(c) for c in swatch_rows[:3]] == [class_colour(i) for i in range(3)]
    assert tuple(swatch_rows[3]) == (255, 255, 255)  # the "more" row has no swatch


def test_fit_text_shortens_with_an_ellipsis():
    face = font()
    assert fit_text("sky", 100, face) == "sky"
    long = fit_text("a very long class name indeed", 60, face)
    assert long.endswith("…") and face.getlength(long) <= 60


def test_with_legend_size_is_image_plus_legend():
    picture = np.zeros((200, 50, 3), np.uint8)
    assert with_legend(picture, [(0, "sky")]).size == (50 + LEGEND_WIDTH, 200)
    assert with_legend(picture[:20], [(0, "sky"), (1, "grass")]).size == (50 + LEGEND_WIDTH, legend_height(2))


def test_comparison_sheet_has_a_row_per_example():
    image = np.zeros((32, 48, 3), np.uint8)
    gt = np.zeros((32, 48), np.int32)
    pred = np.ones((32, 48), np.int32)
    sheet = comparison_sheet(
        [("a", image, gt, pred), ("b", image, gt, gt)], ["sky", "grass, lawn"], panel_height=64, title="t"
    )
    assert sheet.width == 3 * (96 + PADDING) + LEGEND_WIDTH
    one = comparison_sheet([("a", image, gt, pred)], ["sky", "grass"], panel_height=64, title="t")
    assert sheet.height - one.height == 64 + ROW_HEIGHT + PADDING
    with pytest.raises(ValueError, match="at least one row"):
        comparison_sheet([], ["sky"])


def test_the_legend_lists_a_predicted_only_class_and_the_missed_ones():
    gt = np.array([[0, 0], [2, 2]])
    pred = np.array([[0, 5], [-1, 0]])
    names = ["sky", "grass", "ring, hoop", "x", "y", "lemon"]
    colour_of = {c: rank for rank, c in enumerate(sheet_classes([("a", None, gt, pred)]))}
    assert colour_of == {0: 0, 2: 1, 5: 2}
    assert row_legend(gt, pred, names, colour_of) == [(2, "lemon (pred. only)"), (1, "ring (missed)"), (0, "sky")]


def test_a_large_vocabulary_sheet_has_distinct_colours_and_a_legend_that_fits():
    image = np.zeros((16, 16, 3), np.uint8)
    gt = np.repeat(np.arange(400, 416).reshape(1, 16), 16, axis=0)  # 16 classes of 847 in one image
    pred = np.roll(gt, 1, axis=1) + 400  # 16 other classes predicted
    names = [f"class {i}" for i in range(847)]
    sheet = comparison_sheet([("a", image, gt, pred)], names, panel_height=64)
    assert sheet.height >= legend_height(32)  # the row grew: no "… more" line
    column = 16 * 64 // 16
    gt_panel = np.asarray(sheet)[2 * ROW_HEIGHT + PADDING + 2, column + PADDING : 2 * column + PADDING : 4]
    assert len({tuple(c) for c in gt_panel}) == 16  # 16 classes, 16 colours
