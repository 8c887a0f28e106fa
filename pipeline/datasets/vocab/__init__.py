"""Class-name lists of the standard benchmarks, shipped as JSON files in this package.

Names are the benchmarks' own, index = label value of the prepared on-disk format
(see each reader); synonyms are separated by ", " and stray whitespace is stripped.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

VOCAB_NAMES = ("ade150", "ade847", "pc459", "pc59", "voc20", "coco_stuff171")


@cache
def _load(name: str) -> tuple[Any, ...]:
    if name not in VOCAB_NAMES:
        raise KeyError(f"unknown vocabulary {name!r}; known: {', '.join(VOCAB_NAMES)}")
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return tuple(json.loads(text))


def class_names(name: str) -> list[str]:
    """The class names of benchmark ``name`` in label order (``"name, synonym, ..."`` strings)."""
    if name == "coco_stuff171":
        return [entry["name"] for entry in coco_stuff_categories()]
    return list(_load(name))


def coco_stuff_categories() -> list[dict[str, Any]]:
    """The 171 COCO-Stuff categories ``{id, name, isthing}`` in id order (ids have gaps, 1..182)."""
    return [dict(entry) for entry in _load("coco_stuff171")]
