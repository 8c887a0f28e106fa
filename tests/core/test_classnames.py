from __future__ import annotations

import pytest

from core.classnames import display_names, parse_class_list, split_synonyms


def test_parse_class_list():
    assert parse_class_list("cat, dog|puppy ,grass") == ["cat", "dog, puppy", "grass"]
    assert parse_class_list(" traffic light |stoplight,, sky ") == ["traffic light, stoplight", "sky"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no class names"),
        (" , ,", "no class names"),
        ("cat, |dog", "empty synonym"),
        ("cat, dog||puppy", "empty synonym"),
        ("Cat, dog, cat|kitty", "'cat' is listed twice"),
    ],
)
def test_parse_class_list_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_class_list(text)


def test_display_names_stay_unique() -> None:
    assert display_names(["building, edifice", "sky", "building"]) == ["building #0", "sky", "building #2"]
    assert split_synonyms(" building , edifice ,") == ["building", "edifice"]
    with pytest.raises(ValueError, match="has no words"):
        split_synonyms(" , ")
