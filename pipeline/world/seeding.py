"""Independent random streams of the world generator, one per (purpose, split, image).

Keys have a fixed length: numpy's ``SeedSequence`` pads short keys with zeros,
so ``[s, 1]`` and ``[s, 1, 0]`` would collide.
"""

from __future__ import annotations

import numpy as np

STREAM_UNSEEN = 0  # which classes are unseen
STREAM_PLAN = 1  # which classes each image of a split shows
STREAM_IMAGE = 2  # one image's geometry, texture, captions
STREAM_VOCAB = 3  # which world classes a benchmark's class list holds

#: ``benchmark`` is the ``demo`` benchmark's split (its name predates the other four); ``val`` the validation
#: split that every tuned value is chosen on.
SPLITS = {"train": 0, "benchmark": 1, "ade847": 2, "pc459": 3, "pc59": 4, "voc20": 5, "val": 6}


def rng_for(seed: int, stream: int, split: str | None = None, index: int = 0) -> np.random.Generator:
    """The generator of one stream; ``split`` is ``None`` for world-wide streams."""
    split_code = 0 if split is None else 1 + SPLITS[split]
    return np.random.default_rng(np.random.SeedSequence([int(seed), stream, split_code, int(index)]))
