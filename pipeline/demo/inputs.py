"""What the demo accepts: an uploaded image and a class list, checked with messages fit for the page.

Images are decoded as the mining job decodes them (:func:`pipeline.mining.image_io.decode_image`):
the size is read from the header first, and an image of more than :data:`DECOMPRESSION_LIMIT`
pixels (Pillow's decompression-bomb limit) is refused without being decoded. A decoded image
whose longer side exceeds ``max_side`` is resized (bicubic) to that side; the segmentation and
its picture are then at the resized size, and the page says so.

Class lists are read as ``ovseg predict`` reads them (:func:`core.classnames.parse_class_list`:
commas between classes, ``|`` between synonyms), then held to the demo's limits: at least two
classes (with one, every pixel gets it), at most :data:`MAX_CLASSES` classes and
:data:`MAX_NAMES` names in all (each name costs a text-tower pass per prompt template), and no
name in two classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from core.classnames import parse_class_list, split_synonyms

if TYPE_CHECKING:
    from pipeline.mining.image_io import ImageProblem

#: Pillow's decompression-bomb limit (89,478,485 pixels): above it an upload is refused, not decoded.
DECOMPRESSION_LIMIT = int(Image.MAX_IMAGE_PIXELS)  # type: ignore[arg-type]  # None only once a program lifts it
#: Default longest side of a segmented image; a larger upload is resized to it.
MAX_SIDE = 1024
#: Largest upload accepted by the server, in bytes.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_CLASSES = 150
MAX_NAMES = 300
MAX_CLASS_TEXT = 10_000


class InputError(ValueError):
    """Bad input from the page: the message is shown there as it is."""


@dataclass(frozen=True)
class InputImage:
    """An image ready to segment (``H×W×3 uint8``), the size it came in (``(height, width)``) and its name."""

    pixels: np.ndarray
    original_size: tuple[int, int]
    name: str

    @property
    def resized(self) -> bool:
        return tuple(self.pixels.shape[:2]) != self.original_size

    def describe(self) -> str:
        """``photo.jpg, 640×480`` or ``photo.jpg, 4000×3000, resized to 1024×768``."""
        height, width = self.original_size
        text = f"{self.name}, {width}×{height}"
        if self.resized:
            text += f", resized to {self.pixels.shape[1]}×{self.pixels.shape[0]}"
        return text


def fit_within(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """``pixels`` resized (bicubic) so that its longer side is ``max_side``; unchanged when it already fits."""
    height, width = pixels.shape[:2]
    if max(height, width) <= max_side:
        return pixels
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC))


def read_upload(
    path: str | Path | None,
    *,
    max_side: int = MAX_SIDE,
    max_pixels: int = DECOMPRESSION_LIMIT,
    max_bytes: int = MAX_FILE_BYTES,
) -> InputImage:
    """The uploaded file at ``path`` as an :class:`InputImage`; :class:`InputError` naming the file otherwise."""
    if path is None or str(path) == "":
        raise InputError("no image: upload one, or pick a demo image")
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise InputError(f"{name}: the upload is gone (upload it again)")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{name}: the file is empty")
    if size > max_bytes:
        raise InputError(f"{name}: {size / 2**20:.1f} MiB is more than the {max_bytes / 2**20:.0f} MiB accepted")
    from pipeline.mining.image_io import ImageProblem, decode_image  # imports Beam: only when an image comes

    decoded = decode_image(path.read_bytes(), max_pixels=max_pixels, where=name)
    if isinstance(decoded, ImageProblem):
        raise InputError(image_problem_message(decoded, name))
    return InputImage(fit_within(decoded, max_side), tuple(decoded.shape[:2]), name)


def image_problem_message(problem: ImageProblem, name: str) -> str:
    """A page message for a decoding problem: what is wrong, then the decoder's detail (without object ids)."""
    detail = re.sub(r" <[^>]* at 0x[0-9a-f]+>", "", problem.detail.removeprefix(name + ": "))
    if problem.reason == "oversized":
        pixels = re.search(r"(\d+) pixels", detail)
        size = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
        return (
            f"{name}: {size}, more than the {DECOMPRESSION_LIMIT:,} accepted (Pillow's decompression-bomb "
            "limit); not decoded"
        )
    return f"{name}: not an image that can be read ({detail})"


def from_array(pixels: np.ndarray, name: str, *, max_side: int = MAX_SIDE) -> InputImage:
    """An :class:`InputImage` of an already decoded image (a demo benchmark image)."""
    return InputImage(fit_within(pixels, max_side), tuple(pixels.shape[:2]), name)


def read_classes(text: str | None, *, max_classes: int = MAX_CLASSES, max_names: int = MAX_NAMES) -> list[str]:
    """The class list typed in the page (``"sky, grass|lawn, zebra"``) as class names (``"grass, lawn"``).

    :class:`InputError` for an empty list, a single class (a list of synonyms only is one class),
    more than ``max_classes`` classes or ``max_names`` names, and a name given in two classes.
    """
    text = (text or "").strip()
    if not text:
        raise InputError(
            "no classes: type class names separated by commas, synonyms of one class separated by '|' "
            "(e.g. 'sky, grass|lawn, zebra')"
        )
    if len(text) > MAX_CLASS_TEXT:
        raise InputError(f"the class list is {len(text):,} characters long; at most {MAX_CLASS_TEXT:,} are accepted")
    try:
        classes = parse_class_list(text)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if len(classes) > max_classes:
        raise InputError(f"{len(classes)} classes: at most {max_classes} are accepted")
    if len(classes) == 1:
        synonyms = split_synonyms(classes[0])
        if len(synonyms) > 1:
            raise InputError(
                f"one class only, '{synonyms[0]}' with the synonyms {', '.join(synonyms[1:])}: "
                "separate classes with commas and synonyms of one class with '|' "
                "(e.g. 'cat|kitty, dog')"
            )
        raise InputError(f"one class only ('{synonyms[0]}'): with one class every pixel gets it; give at least two")
    names: dict[str, int] = {}
    for index, name in enumerate(classes):
        for synonym in split_synonyms(name):
            other = names.setdefault(synonym.lower(), index)
            if other != index:
                raise InputError(
                    f"'{synonym}' names two classes ({classes[other].split(',')[0]!r} and "
                    f"{name.split(',')[0]!r}); a name may belong to one class only"
                )
    if len(names) > max_names:
        raise InputError(f"{len(names)} names (classes and synonyms): at most {max_names} are accepted")
    return classes


def class_list_text(class_names: list[str]) -> str:
    """The page's text for class names: ``["sky", "grass, lawn"]`` → ``"sky, grass|lawn"``."""
    return ", ".join("|".join(split_synonyms(name)) for name in class_names)
