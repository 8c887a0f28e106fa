"""Reading one image for mining: bytes through Beam's FileSystems, then decoding and validating.

Reading goes through :class:`apache_beam.io.filesystems.FileSystems`, so an
images folder on ``gs://`` or ``s3://`` works wherever Beam's filesystem for it
is installed. Every failure is a :class:`ImageProblem` with a
machine-readable reason (the reject reasons of the mining job) instead of an
exception: a bad file rejects one image, not the job.

Pixels are taken as stored: EXIF orientation is not applied, as in COCO, whose
annotations refer to the stored pixel grid.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from PIL import Image, UnidentifiedImageError

REASON_MISSING = "missing"
REASON_UNREADABLE = "unreadable"
REASON_EMPTY = "empty_file"
REASON_UNDECODABLE = "undecodable"
REASON_OVERSIZED = "oversized"
REASON_SIZE_MISMATCH = "size_mismatch"
IMAGE_REASONS = (
    REASON_MISSING,
    REASON_UNREADABLE,
    REASON_EMPTY,
    REASON_UNDECODABLE,
    REASON_OVERSIZED,
    REASON_SIZE_MISMATCH,
)


@dataclass(frozen=True)
class ImageProblem:
    """Why an image cannot be used: one of :data:`IMAGE_REASONS` and a human-readable detail."""

    reason: str
    detail: str


def read_image_bytes(path: str) -> bytes | ImageProblem:
    """The bytes of the file at ``path`` (local path or any URL Beam's FileSystems handles)."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            data = handle.read()
    except FileNotFoundError:
        return ImageProblem(REASON_MISSING, f"{path}: file not found")
    except OSError as exc:  # includes Beam's BeamIOError, IsADirectoryError, PermissionError
        return ImageProblem(REASON_UNREADABLE, f"{path}: cannot be read ({type(exc).__name__}: {exc})")
    if not data:
        return ImageProblem(REASON_EMPTY, f"{path}: file is empty (0 bytes)")
    return data


def decode_image(
    data: bytes, *, max_pixels: int, expected_size: tuple[int, int] | None = None, where: str = "image"
) -> np.ndarray | ImageProblem:
    """Decode ``data`` to an ``H×W×3 uint8`` RGB array, or say why not.

    The size is read from the header first: more than ``max_pixels`` pixels is
    ``oversized`` without decoding. ``expected_size`` ``(height, width)``, when
    given (the captions file's record), must match (``size_mismatch``).
    Truncated or unrecognised data is ``undecodable``.
    """
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces PIL's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    return ImageProblem(
                        REASON_OVERSIZED,
                        f"{where}: {width}x{height} = {width * height} pixels > max_pixels {max_pixels}",
                    )
                image.load()
                pixels = np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except Image.DecompressionBombError as exc:
        return ImageProblem(REASON_OVERSIZED, f"{where}: {exc}")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        return ImageProblem(REASON_UNDECODABLE, f"{where}: cannot be decoded ({type(exc).__name__}: {exc})")
    if expected_size is not None and tuple(pixels.shape[:2]) != tuple(expected_size):
        return ImageProblem(
            REASON_SIZE_MISMATCH,
            f"{where}: decoded size {pixels.shape[1]}x{pixels.shape[0]} differs from the captions file's "
            f"{expected_size[1]}x{expected_size[0]}",
        )
    return pixels


def load_image(
    path: str, *, max_pixels: int, expected_size: tuple[int, int] | None = None
) -> np.ndarray | ImageProblem:
    """:func:`read_image_bytes` then :func:`decode_image`."""
    data = read_image_bytes(path)
    if isinstance(data, ImageProblem):
        return data
    return decode_image(data, max_pixels=max_pixels, expected_size=expected_size, where=path)
