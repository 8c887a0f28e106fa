"""What ``ovseg predict`` needs besides the segmenter: class lists from the command line,
pixel shares and the output picture.

Class lists: commas separate classes, ``|`` separates synonyms of one class
(``"cat, dog|puppy, grass"`` → three classes, the second named "dog" or "puppy").
Internally a class is the project's ``"dog, puppy"`` string (first synonym = display name).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from pipeline.label_overlay import LEGEND_WIDTH, blend, with_legend

SYNONYM_SEPARATOR = "|"


def parse_class_list(text: str) -> list[str]:
    """``"cat, dog|puppy"`` → ``["cat", "dog, puppy"]``.

    Whitespace around names is dropped. An empty list, an empty class (``"cat,,dog"``
    is fine, ``"cat, |"`` is not) and a display name given twice are ``ValueError``.
    """
    classes, seen = [], set()
    for part in text.split(","):
        if not part.strip():
            continue
        synonyms = [s.strip() for s in part.split(SYNONYM_SEPARATOR)]
        if not all(synonyms):
            raise ValueError(f"class {part.strip()!r} has an empty synonym (synonyms are separated by '|')")
        key = synonyms[0].lower()
        if key in seen:
            raise ValueError(f"class {synonyms[0]!r} is listed twice")
        seen.add(key)
        classes.append(", ".join(synonyms))
    if not classes:
        raise ValueError(f"no class names in {text!r} (separate classes with commas, synonyms with '|')")
    return classes


def percentages(counts: Sequence[int]) -> list[float]:
    """Shares of ``counts`` in percent with 2 decimals that add up to exactly 100.00.

    Largest-remainder rounding on hundredths of a percent (ties go to the earlier
    entry); all zeros when the total is zero.
    """
    total = int(sum(counts))
    if total == 0:
        return [0.0] * len(counts)
    exact = [10_000 * int(c) / total for c in counts]
    floors = [int(e) for e in exact]
    short = 10_000 - sum(floors)
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:short]:
        floors[i] += 1
    return [f / 100 for f in floors]


def pixel_shares(labels: np.ndarray, class_names: Sequence[str]) -> tuple[dict[str, float], float]:
    """``({display name: percent of the image}, percent without a label)``, summing to 100."""
    counts = np.bincount(labels.ravel() + 1, minlength=len(class_names) + 1)
    shares = percentages([int(c) for c in counts])
    names = [name.split(",")[0].strip() for name in class_names]
    return dict(zip(names, shares[1:])), shares[0]


def prediction_picture(image: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> Image.Image:
    """The image with its labels blended in and a legend (every class, with its pixel share) to the right.

    Size: ``(W + LEGEND_WIDTH) × max(H, legend height)`` with ``LEGEND_WIDTH`` =
    :data:`pipeline.label_overlay.LEGEND_WIDTH` pixels (220).
    """
    shares, _ = pixel_shares(labels, class_names)
    entries = [(i, f"{name} {share:.1f}%") for i, (name, share) in enumerate(shares.items())]
    return with_legend(blend(image, labels, len(class_names)), entries, LEGEND_WIDTH)
