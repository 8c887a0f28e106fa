"""`ovseg predict` on a demo image with tiny random models: picture size, shares, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pipeline.evaluation.label_overlay import LEGEND_WIDTH, legend_height
from stages.cli import main as cli_main


def predict(inputs, image: Path, classes: str, out: Path, *extra: str) -> int:
    return cli_main(
        [
            "predict",
            str(image),
            "--classes",
            classes,
            "-o",
            str(out),
            "--clip",
            str(inputs.artifacts / "clip_base"),
            "--proposer",
            str(inputs.artifacts / "proposer"),
            "--device",
            "cpu",
            *extra,
        ]
    )


def test_predict_writes_the_overlay_with_legend_and_shares(eval_inputs, tmp_path, capsys):
    image = eval_inputs.benchmark_images[0]
    out = tmp_path / "pred" / "out.png"
    assert predict(eval_inputs, image, "sky, grass|lawn, zebra", out, "--json") == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with Image.open(image) as source, Image.open(out) as picture:
        width, height = source.size
        assert picture.size == (width + LEGEND_WIDTH, max(height, legend_height(3)))
        # The image's part is the photo with colours blended in, not a copy of it.
        assert picture.crop((0, 0, width, height)).tobytes() != source.convert("RGB").tobytes()
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["classes"] == ["sky", "grass, lawn", "zebra"]
    assert set(record["shares"]) == {"sky", "grass", "zebra"}
    assert sum(record["shares"].values()) + record["unlabelled"] == pytest.approx(100.0, abs=1e-9)
    assert record["size"] == [height, width]


def test_predict_json_path_and_short_side_keep_the_image_size(eval_inputs, tmp_path):
    image = eval_inputs.benchmark_images[1]
    out, shares = tmp_path / "out.png", tmp_path / "shares.json"
    assert predict(eval_inputs, image, "sky,water", out, "--short-side", "40", "--json", str(shares)) == 0
    record = json.loads(shares.read_text())
    with Image.open(image) as source:
        assert record["size"] == [source.height, source.width]
    assert not out.with_suffix(".json").exists()


@pytest.mark.parametrize(
    ("image", "classes", "message"),
    [
        ("missing.jpg", "cat", "missing.jpg: image not found"),
        ("notes.jpg", "cat", "notes.jpg: unreadable image"),
        ("demo", " , ", "no class names in ' , '"),
        ("demo", "cat, dog|", "class 'dog|' has an empty synonym"),
        ("demo", "cat, Cat", "class 'Cat' is listed twice"),
    ],
)
def test_predict_errors_name_the_problem(eval_inputs, tmp_path, capsys, image, classes, message):
    (tmp_path / "notes.jpg").write_text("not an image")
    path = eval_inputs.benchmark_images[0] if image == "demo" else tmp_path / image
    assert predict(eval_inputs, path, classes, tmp_path / "out.png") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_predict_without_a_clip_folder(eval_inputs, tmp_path, capsys):
    code = cli_main(
        [
            "predict",
            str(eval_inputs.benchmark_images[0]),
            "--classes",
            "cat",
            "-o",
            str(tmp_path / "out.png"),
            "--clip",
            str(tmp_path / "nowhere"),
        ]
    )
    assert code == 2
    assert "nowhere: CLIP folder not found (give one with --clip)" in capsys.readouterr().err


def test_predict_record_is_unchanged_without_proposals_and_one_pass_classifiers_use_the_proposer(eval_inputs, tmp_path):
    image, out = eval_inputs.benchmark_images[0], tmp_path / "out.png"
    assert predict(eval_inputs, image, "sky, grass", out, "--json") == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert set(record) == {
        "image",
        "size",
        "classes",
        "shares",
        "unlabelled",
        "clip",
        "proposer",
        "lam",
        "mask_threshold",
    }
    assert predict(eval_inputs, image, "sky, grass", out, "--json", "--classifier", "maskpool", "--beta", "1") == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["classifier"] == "maskpool" and record["alpha"] == 0.7 and record["beta"] == 1.0
    assert record["proposer"] == str(eval_inputs.artifacts / "proposer") and "lam" not in record
