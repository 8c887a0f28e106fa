"""Class lists from the command line, pixel shares and the prediction picture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from model.clip import save_clip_folder
from model.mask_adapter import MaskAdapter, MaskAdapterConfig, save_mask_adapter
from pipeline.datasets.proposal_table import PROPOSALS, proposal_rows, write_table
from pipeline.evaluation.label_overlay import LEGEND_WIDTH, ROW_HEIGHT, class_colour, legend_height
from pipeline.evaluation.prediction import main, percentages, pixel_shares, prediction_picture


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


def grid_masks(height: int, width: int, rows: int, cols: int) -> torch.Tensor:
    """A stand-in generator: a grid of boxes covering the image, ``[rows·cols, H, W]`` bool."""
    masks = torch.zeros(rows * cols, height, width, dtype=torch.bool)
    for i in range(rows):
        for j in range(cols):
            top, bottom = i * height // rows, (i + 1) * height // rows
            left, right = j * width // cols, (j + 1) * width // cols
            masks[i * cols + j, top:bottom, left:right] = True
    return masks


@pytest.fixture(scope="module")
def generated(tiny_clip, tmp_path_factory) -> Path:
    """``photos/{a,b}.png`` (30×40), a grid of boxes for ``photos/a.png`` in ``grid.parquet``, the tiny CLIP in
    ``clip/`` and a random Mask-Adapter for it in ``adapter/``."""
    root = tmp_path_factory.mktemp("generated")
    (root / "photos").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(root / "photos" / name)
    masks = grid_masks(30, 40, 2, 3)
    rows = proposal_rows("a.png", masks, torch.linspace(0.5, 1.0, 6), torch.ones(6, 1), ["object"])
    write_table(pa.Table.from_pylist(rows, schema=PROPOSALS), root / "grid.parquet")
    save_clip_folder(tiny_clip, root / "clip")
    torch.manual_seed(0)
    adapter = MaskAdapter(MaskAdapterConfig(clip_dim=tiny_clip.embed_dim, num_maps=2, hidden=8, blocks=1))
    save_mask_adapter(adapter, root / "adapter", clip_model=tiny_clip.model)
    return root


def predict(root: Path, image: str, out: Path, *extra: str) -> int:
    return main(
        [
            str(root / "photos" / image),
            "--classes",
            "sky, grass|lawn, zebra",
            "-o",
            str(out),
            "--json",
            "--clip",
            str(root / "clip"),
            "--adapter",
            str(root / "adapter"),
            "--device",
            "cpu",
            "--proposer",
            str(root / "no_proposer_needed"),
            *extra,
        ]
    )


def predict_grid(root: Path, image: str, out: Path, *extra: str) -> int:
    """:func:`predict` with the masks of ``grid.parquet``."""
    return predict(root, image, out, "--proposals", str(root / "grid.parquet"), *extra)


@pytest.mark.parametrize("classifier", ["crops", "maskpool", "adapter"])
def test_a_grid_of_boxes_is_classified_end_to_end_without_a_proposer(generated, tmp_path, classifier):
    out = tmp_path / "out.png"
    assert predict_grid(generated, "a.png", out, "--classifier", classifier) == 0
    with Image.open(out) as picture:
        assert picture.size == (40 + LEGEND_WIDTH, max(30, legend_height(3)))
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["unlabelled"] == 0.0  # the grid covers every pixel
    assert record["masks"] == 6 and record["proposals"] == str(generated / "grid.parquet")
    assert "proposer" not in record and "lam" not in record
    assert record.get("classifier", "crops") == classifier
    assert ("adapter" in record) == (classifier == "adapter")


def test_masks_are_matched_by_the_path_under_the_proposals_root(generated, tmp_path, capsys):
    out = tmp_path / "out.png"
    # Named relative to the root's parent, "a.png" is "photos/a.png": the file holds no row for it.
    assert predict_grid(generated, "a.png", out, "--proposals-root", str(generated), "--short-side", "15") == 0
    assert "has no masks for 'photos/a.png'; nothing is labelled" in capsys.readouterr().err
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["unlabelled"] == 100.0 and record["masks"] == 0 and record["size"] == [30, 40]
    assert predict_grid(generated, "b.png", out) == 0
    assert "has no masks for 'b.png'" in capsys.readouterr().err
    assert predict_grid(generated, "a.png", out, "--short-side", "15") == 0  # the masks follow the resized image
    assert json.loads(out.with_suffix(".json").read_text())["unlabelled"] == 0.0


def test_bad_proposal_inputs_are_clear_errors(generated, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert predict(generated, "a.png", out, "--proposals", str(tmp_path / "none.parquet")) == 2
    assert "none.parquet: proposals file not found" in capsys.readouterr().err
    assert predict_grid(generated, "a.png", out, "--proposals-root", str(tmp_path)) == 2
    assert "a.png: the image is not inside --proposals-root" in capsys.readouterr().err
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (41, 30)).save(tmp_path / "photos" / "a.png")
    assert (
        main(
            [
                str(tmp_path / "photos" / "a.png"),
                "--classes",
                "sky",
                "-o",
                str(out),
                "--clip",
                str(generated / "clip"),
                "--proposals",
                str(generated / "grid.parquet"),
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "the masks of 'a.png' are 30×40, the image is 30×41" in capsys.readouterr().err
    assert predict_grid(generated, "a.png", out, "--classifier", "adapter", "--adapter", str(tmp_path / "nowhere")) == 2
    assert "nowhere: Mask-Adapter folder not found (give one with --adapter)" in capsys.readouterr().err
    assert not out.exists()
