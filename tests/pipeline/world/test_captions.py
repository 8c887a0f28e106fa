"""Captions mention some (never none) of the visible classes, with counts, plurals and synonyms."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pipeline.world.captions import thing_phrase, write_captions
from pipeline.world.catalogue import CATALOGUE

INDEX = {spec.name: i for i, spec in enumerate(CATALOGUE)}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _nouns_of(index: int) -> set[str]:
    spec = CATALOGUE[index]
    return {form for noun in spec.nouns for form in (noun, spec.plural(noun))}


def test_captions_mention_only_visible_classes() -> None:
    facts = {INDEX["grass"]: (1, 0.5), INDEX["zebra"]: (2, 0.1), INDEX["ring"]: (1, 0.02)}
    absent = [i for i in range(len(CATALOGUE)) if i not in facts]
    rng = np.random.default_rng(0)
    for _ in range(60):
        captions = write_captions(facts, CATALOGUE, 5, rng)
        assert len(captions) == 5
        assert len({c.text for c in captions}) == 5
        for caption in captions:
            words = _words(caption.text)
            assert caption.mentions and set(caption.mentions) <= set(facts)
            assert len(caption.mentions) < len(facts) + 1
            for index in caption.mentions:
                assert words & _nouns_of(index), (caption.text, CATALOGUE[index].name)
            for index in absent:
                assert not words & _nouns_of(index), caption.text
            assert caption.text[0].isupper() and caption.text.endswith(".")


def test_some_captions_leave_classes_out() -> None:
    facts = {INDEX["sky"]: (1, 0.4), INDEX["cow"]: (1, 0.2), INDEX["egg"]: (3, 0.03), INDEX["sand"]: (1, 0.3)}
    captions = write_captions(facts, CATALOGUE, 200, np.random.default_rng(1))
    assert any(len(c.mentions) < len(facts) for c in captions)
    counts = np.bincount([m for c in captions for m in c.mentions], minlength=len(CATALOGUE))
    assert all(counts[i] > 20 for i in facts)


def test_plural_phrases_and_counts() -> None:
    rng = np.random.default_rng(2)
    zebra = CATALOGUE[INDEX["zebra"]]
    singles = {thing_phrase(zebra, 1, 0.05, rng)[0] for _ in range(50)}
    assert all(p.startswith(("a ", "an ")) and p.endswith("zebra") for p in singles)
    plurals = {thing_phrase(zebra, 2, 0.05, rng)[0] for _ in range(200)}
    assert all(p.endswith("zebras") for p in plurals)
    assert "two zebras" in plurals
    egg = CATALOGUE[INDEX["egg"]]
    assert any(p.startswith("an ") for p, _, _ in (thing_phrase(egg, 1, 0.05, rng) for _ in range(50)))
    small = {thing_phrase(egg, 1, 0.01, rng)[0] for _ in range(200)}
    large = {thing_phrase(egg, 1, 0.3, rng)[0] for _ in range(200)}
    assert any(w in " ".join(small) for w in ("small", "tiny", "little"))
    assert not any(w in " ".join(small) for w in ("large", "big", "huge"))
    assert any(w in " ".join(large) for w in ("large", "big", "huge"))


def test_synonyms_and_rare_colour_words() -> None:
    facts = {INDEX["ring"]: (1, 0.1), INDEX["grass"]: (1, 0.6)}
    captions = write_captions(facts, CATALOGUE, 400, np.random.default_rng(3))
    text = " ".join(c.text for c in captions)
    assert "hoop" in text and "ring" in text and "lawn" in text
    colour_share = np.mean([c.colour_word for c in captions])
    assert 0 < colour_share < 0.15


def test_no_visible_class_refused() -> None:
    with pytest.raises(ValueError, match="without visible classes"):
        write_captions({}, CATALOGUE, 5, np.random.default_rng(0))
