"""What the page shows: every bad input is answered with a message (never an exception), good input with results."""

from __future__ import annotations

import html
import io
import zlib

import numpy as np
import pytest
from PIL import Image

from core import paths
from pipeline.datasets.manifest import load_world
from pipeline.demo.examples import Examples
from pipeline.demo.models import DemoModels
from pipeline.demo.page import pairs_answer, segment_answer, shares_html, slug, status_html, why_html
from pipeline.demo.pairs import PairsBrowser

CLASSES = "sky, grass|lawn, zebra"


@pytest.fixture(scope="module")
def world(demo_root):
    return load_world(demo_root / paths.WORLD_MANIFEST)


@pytest.fixture(scope="module")
def models(demo_root, world):
    return DemoModels.load(demo_root / paths.ARTIFACTS, variants=["base", "adapter_ens"], world_classes=world.classes)


@pytest.fixture(scope="module")
def examples(world):
    return Examples(world.benchmark("demo"))


@pytest.fixture
def files(tmp_path):
    """Uploads: a photo, a text file, an empty file, a PNG claiming 400 million pixels, a 3000×1000 image."""
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    png = bytearray(buffer.getvalue())
    png[16:24] = (20_000).to_bytes(4, "big") * 2
    png[29:33] = zlib.crc32(bytes(png[12:29])).to_bytes(4, "big")
    (tmp_path / "bomb.png").write_bytes(bytes(png))
    Image.new("RGB", (3000, 1000), (0, 90, 200)).save(tmp_path / "huge.png")
    return tmp_path


def ask(models, examples, upload=None, example=None, classes=CLASSES, variants=("base",), why=False, max_side=1024):
    return segment_answer(
        models, examples, upload, example, classes, list(variants), why, max_side=max_side, short_side=None
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            {"upload": "notes.txt"},
            "notes.txt: not an image that can be read (cannot be decoded (UnidentifiedImageError",
        ),
        ({"upload": "empty.jpg"}, "empty.jpg: the file is empty"),
        ({"upload": "bomb.png"}, "bomb.png: 400,000,000 pixels, more than the 89,478,485 accepted"),
        ({"upload": "a.png", "classes": ""}, "no classes: type class names separated by commas"),
        (
            {"upload": "a.png", "classes": ", ".join(f"c{i}" for i in range(500))},
            "500 classes: at most 150 are accepted",
        ),
        ({"upload": "a.png", "classes": "grass|lawn|meadow"}, "one class only, 'grass' with the synonyms lawn, meadow"),
        ({"upload": "a.png", "variants": ()}, "no variant chosen: tick at least one"),
        ({}, "no image: upload one, or pick a demo image"),
        ({"example": "not_a_key"}, "'not_a_key' is not an image of the benchmark 'demo'"),
    ],
)
def test_each_bad_input_is_answered_in_the_page(models, examples, files, case, message):
    if "upload" in case:
        case = {**case, "upload": str(files / case["upload"])}
    answer = ask(models, examples, **case)
    assert not answer.ok and message in answer.message and answer.results == []
    assert 'data-status="error"' in answer.status and html.escape(answer.message) in answer.status
    assert not answer.message.startswith("internal error")
    assert ask(models, examples, upload=str(files / "a.png")).ok  # and the next request is served


def test_a_huge_image_is_resized_and_said_so(models, examples, files):
    answer = ask(models, examples, upload=str(files / "huge.png"), max_side=300)
    assert answer.ok and "huge.png, 3000×1000, resized to 300×100" in answer.message
    assert answer.results[0].labels.shape == (100, 300)


def test_an_upload_segments_with_each_chosen_variant_and_the_legend_lists_the_classes(models, examples, files):
    answer = ask(models, examples, upload=str(files / "a.png"), variants=("adapter_ens", "base"), why=True)
    assert answer.ok and answer.message.startswith("segmented a.png, 60×40 among 3 classes: base ")
    assert [result.variant for result in answer.results] == ["base", "adapter_ens"]
    table = shares_html(answer.classes, answer.results)
    for name in ("sky", "grass", "zebra", "unlabelled", "lawn", "<th>base</th>", "<th>adapter_ens</th>"):
        assert name in table
    assert table.count('class="class-row"') == 3
    assert f"{answer.results[0].shares['grass']:.1f} %" in table
    why = why_html(answer.results[1])
    assert 'id="why-adapter-ens"' in why and why.count("<tr>") == 1 + len(answer.results[1].why.proposals)


def test_a_demo_image_comes_with_its_ground_truth_classes(models, examples):
    key = examples.keys()[0]
    pixels, text = examples.load(key)
    assert pixels.shape == (64, 64, 3) and text
    answer = ask(models, examples, example=key, classes=text)
    assert answer.ok and answer.message.startswith(f"segmented demo image {key}, 64×64")
    assert ask(models, examples, upload=None, example=key, classes=text).results[0].picture.size[0] == 64 + 220


def test_html_escapes_what_users_type():
    assert status_html("<b>", False) == ('<div id="status" class="status error" data-status="error">&lt;b&gt;</div>')
    assert slug("crops:My clip") == "crops-my-clip"


def test_pairs_answers(demo_root, world):
    browser = PairsBrowser.load(demo_root / paths.PAIRS, world.images_dir, demo_root / paths.REJECTS)
    first = pairs_answer(browser, "", None, "similarity", True, 1)
    assert first.ok and first.noun == browser.nouns()[0][0] and first.page.page == 1
    assert pairs_answer(browser, "thi", None, "margin", False, "x").noun == "thing"
    missing = pairs_answer(browser, "qqq", None, "similarity", True, 1)
    assert not missing.ok and missing.message == "no noun contains 'qqq'" and 'id="pairs-status"' in missing.status
    assert not pairs_answer(None, "", None, "similarity", True, 1).ok


def test_an_unexpected_error_is_answered_and_logged(models, examples, files, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(models, "segment", broken)
    answer = ask(models, examples, upload=str(files / "a.png"))
    assert not answer.ok and answer.message == (
        "internal error (RuntimeError: out of cheese); the server log has the details"
    )
    assert "segmentation failed" in caplog.text and "Traceback" in caplog.text
