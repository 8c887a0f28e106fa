"""Class lists from the command line, pixel shares and the prediction picture."""
from __future__ import annotations

import numpy as np

from pipeline.evaluation.label_overlay import LEGEND_WIDTH, ROW_HEIGHT, class_colour, legend_height
from pipeline.evaluation.prediction import percentages, pixel_shares, prediction_picture


def test_percentages_add_up_to_exactly_100():
    shares = percentages([1, 1, 1])
    assert shares == [33.34, 33.33, 33.33]  # the leftover hundredth goes to the first of the tied
    assert round(sum(percentages([7, 0, 13, 29, 1])) * 100) == 10_000
    assert percentages([0, 0]) == [0.0, 0.0]
    assert percentages([5]) == [100.0]


def test_pixel_shares_count_unlabelled_pixels_apart():
    labels = np.array([[0, 0, 1, -1], [1, 1, 1, 1]], dtype=np.int32)
    shares, unlabelled = pixel_shares(labels, ["cat, kitty", "dog", "grass"])
    assert shares == {"cat": 25.0, "dog": 62.5, "grass": 0.0}
    assert unlabelled == 12.5


def test_prediction_picture_size_and_colours():
    image = np.full((30, 40, 3), 200, np.uint8)
    labels = np.zeros((30, 40), np.int32)
    labels[:, 20:] = 1
    picture = prediction_picture(image, labels, ["sky", "grass", "cow", "dog"])
    assert picture.size == (40 + LEGEND_WIDTH, max(30, legend_height(4)))
    assert legend_height(4) > 30  # the legend is the taller part here: the column below the image is white
    pixels = np.asarray(picture)
    assert tuple(pixels[-1, 0]) == (255, 255, 255)
    sky = np.asarray(class_colour(0), np.float32)
    assert np.allclose(pixels[5, 5], (0.45 * 200 + 0.55 * sky).round(), atol=1)
    # The legend's first swatch has the colour of class 0.
    assert tuple(pixels[ROW_HEIGHT // 2 + 6, 40 + 10]) == class_colour(0)
