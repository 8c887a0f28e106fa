"""Reading and validating one image for mining: every failure becomes a reason, not an exception."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.mining.image_io import (
    REASON_EMPTY,
    REASON_MISSING,
    REASON_OVERSIZED,
    REASON_SIZE_MISMATCH,
    REASON_UNDECODABLE,
    REASON_UNREADABLE,
    ImageProblem,
    decode_image,
    load_image,
    read_image_bytes,
)


def _jpeg(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 128).save(buffer, format="JPEG" if mode != "P" else "PNG")
    return buffer.getvalue()


def test_decodes_to_rgb_uint8(tmp_path: Path):
    path = tmp_path / "a.jpg"
    path.write_bytes(_jpeg(12, 8))
    pixels = load_image(str(path), max_pixels=1000, expected_size=(8, 12))
    assert isinstance(pixels, np.ndarray) and pixels.shape == (8, 12, 3) and pixels.dtype == np.uint8
    grey = decode_image(_jpeg(5, 4, "L"), max_pixels=100)
    assert grey.shape == (4, 5, 3)
    palette = decode_image(_jpeg(5, 4, "P"), max_pixels=100)
    assert palette.shape == (4, 5, 3)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: None, REASON_MISSING),
        (lambda p: p.write_bytes(b""), REASON_EMPTY),
        (lambda p: p.mkdir(), REASON_UNREADABLE),
        (lambda p: p.write_bytes(b"this is not an image"), REASON_UNDECODABLE),
        (lambda p: p.write_bytes(_jpeg(64, 64)[:300]), REASON_UNDECODABLE),  # truncated JPEG
        (lambda p: p.write_bytes(_jpeg(40, 30)), REASON_OVERSIZED),  # 1200 px > 1000
        (lambda p: p.write_bytes(_jpeg(12, 9)), REASON_SIZE_MISMATCH),  # the captions file says 8x12
    ],
)
def test_problems_have_reasons(tmp_path: Path, make, reason):
    path = tmp_path / "image.jpg"
    make(path)
    result = load_image(str(path), max_pixels=1000, expected_size=(8, 12) if reason == REASON_SIZE_MISMATCH else None)
    assert isinstance(result, ImageProblem) and result.reason == reason
    assert str(path) in result.detail


def test_oversized_is_decided_from_the_header():
    # A 1x1 PNG whose header claims 100000 x 100000 pixels: refused without decoding (which would fail).
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    png = bytearray(buffer.getvalue())
    png[16:24] = (100000).to_bytes(4, "big") + (100000).to_bytes(4, "big")  # IHDR width, height
    png[29:33] = zlib.crc32(bytes(png[12:29])).to_bytes(4, "big")  # the IHDR chunk's CRC
    result = decode_image(bytes(png), max_pixels=10**6, where="huge.png")
    assert isinstance(result, ImageProblem) and result.reason == REASON_OVERSIZED and "huge.png" in result.detail
    assert isinstance(decode_image(_jpeg(8, 8), max_pixels=64), np.ndarray)


def test_read_bytes_goes_through_beam_filesystems(tmp_path: Path):
    path = tmp_path / "x.jpg.gz"  # no decompression by extension: the bytes come back as stored
    path.write_bytes(b"raw")
    assert read_image_bytes(str(path)) == b"raw"
