"""What the segmenter tests share: a random proposer for the tiny CLIP."""

from __future__ import annotations

import pytest

from model.clip import ClipBundle
from model.proposer import MaskProposer
from tests.doubles import random_proposer


@pytest.fixture(scope="module")
def proposer(tiny_clip: ClipBundle) -> MaskProposer:
    """``proposer-tiny`` with random weights (seed 0) for the tiny CLIP's text embeddings, in eval mode."""
    return random_proposer(tiny_clip.embed_dim).eval()
