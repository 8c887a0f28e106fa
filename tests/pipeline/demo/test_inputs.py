"""The demo's input checks: uploads (not an image, empty, huge, too large to decode) and class lists."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from pipeline.demo.inputs import (
    DECOMPRESSION_LIMIT,
    MAX_CLASSES,
    InputError,
    class_list_text,
    fit_within,
    read_classes,
    read_upload,
)


def png_claiming(width: int, height: int) -> bytes:
    """A 1×1 PNG whose header claims ``width × height`` pixels (decoding it would fail)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    png = bytearray(buffer.getvalue())
    png[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")  # IHDR width, height
    png[29:33] = zlib.crc32(bytes(png[12:29])).to_bytes(4, "big")  # the IHDR chunk's CRC
    return bytes(png)


def test_an_image_is_read_as_rgb_at_its_size(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    image = read_upload(tmp_path / "photo.png")
    assert np.array_equal(image.pixels, pixels) and not image.resized
    assert image.describe() == "photo.png, 40×30"
    Image.fromarray(pixels[..., 0]).save(tmp_path / "grey.png")
    assert read_upload(tmp_path / "grey.png").pixels.shape == (30, 40, 3)


def test_a_large_image_is_resized_to_the_longest_side(tmp_path):
    Image.new("RGB", (300, 120), (10, 200, 30)).save(tmp_path / "wide.png")
    image = read_upload(tmp_path / "wide.png", max_side=100)
    assert image.pixels.shape == (40, 100, 3) and image.original_size == (120, 300)
    assert image.describe() == "wide.png, 300×120, resized to 100×40"
    assert fit_within(image.pixels, 100) is image.pixels


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"these are notes, not a picture", "notes.png: not an image that can be read"),
        (b"", "notes.png: the file is empty"),
        # above the limit (decided from the header) and above twice the limit (Pillow refuses to open it)
        (
            png_claiming(10_000, 10_000),
            f"notes.png: 100,000,000 pixels, more than the {DECOMPRESSION_LIMIT:,} accepted",
        ),
        (
            png_claiming(20_000, 20_000),
            f"notes.png: 400,000,000 pixels, more than the {DECOMPRESSION_LIMIT:,} accepted",
        ),
        (png_claiming(400, 300)[:60], "notes.png: not an image that can be read (cannot be decoded"),
    ],
)
def test_bad_uploads_are_input_errors_naming_the_file(tmp_path, content, message):
    (tmp_path / "notes.png").write_bytes(content)
    with pytest.raises(InputError) as error:
        read_upload(tmp_path / "notes.png")
    assert message in str(error.value)


def test_missing_and_too_many_bytes(tmp_path):
    with pytest.raises(InputError, match="no image: upload one, or pick a demo image"):
        read_upload(None)
    with pytest.raises(InputError, match="gone.png: the upload is gone"):
        read_upload(tmp_path / "gone.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    with pytest.raises(InputError, match=r"big.png: 0.0 MiB is more than the 0 MiB accepted"):
        read_upload(tmp_path / "big.png", max_bytes=10)


def test_class_lists_read_as_predict_reads_them():
    assert read_classes(" sky, grass|lawn ,zebra ") == ["sky", "grass, lawn", "zebra"]
    assert class_list_text(["sky", "grass, lawn"]) == "sky, grass|lawn"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no classes: type class names separated by commas"),
        (" , ,", "no class names in ', ,'"),
        ("cat|kitty|feline", "one class only, 'cat' with the synonyms kitty, feline: separate classes with commas"),
        ("cat", "one class only ('cat'): with one class every pixel gets it; give at least two"),
        (", ".join(f"class{i}" for i in range(500)), f"500 classes: at most {MAX_CLASSES} are accepted"),
        ("dog|puppy, puppy|pup", "'puppy' names two classes ('dog' and 'puppy')"),
        ("cat, dog|", "class 'dog|' has an empty synonym"),
        ("x" * 10_001, "the class list is 10,001 characters long"),
    ],
)
def test_bad_class_lists_are_input_errors(text, message):
    with pytest.raises(InputError) as error:
        read_classes(text)
    assert message in str(error.value)


def test_the_names_limit_counts_synonyms():
    text = ", ".join("|".join(f"c{i}s{j}" for j in range(3)) for i in range(120))
    with pytest.raises(InputError, match="360 names"):
        read_classes(text)
