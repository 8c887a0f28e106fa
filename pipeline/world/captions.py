"""Captions of demo images: varied, partial, noisy, like people's.

Each caption mentions a random non-empty subset (at most three) of the classes an
image shows, things somewhat more often than stuff but never by seen/unseen, so
unseen classes are mentioned as often as seen ones. Noun phrases use synonyms, plurals and counts ("two zebras",
"some eggs"), size adjectives that follow the visible size, and, rarely, a colour
word from the class's palette; most captions also carry non-visual nouns
("a picture of", "in this image").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.world.catalogue import ClassSpec

SMALL, LARGE = 0.03, 0.12  # visible area shares below / above which size words apply
SYNONYM_P, SIZE_P, OTHER_ADJECTIVE_P, COLOUR_P = 0.35, 0.35, 0.08, 0.04
MAX_MENTIONS = 3
THING_WEIGHT = 1.5  # things are picked this much more often than stuff (never by seen/unseen)
_MENTION_WEIGHTS = (0.45, 0.35, 0.2)

_SMALL_WORDS = ("small", "tiny", "little")
_LARGE_WORDS = ("large", "big", "huge")
_OTHER_ADJECTIVES = ("nice", "strange", "lovely", "funny", "old")
_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
_VAGUE = ("some", "several", "a few", "a group of")

_LIST_TEMPLATES = (
    "{L}.",
    "a picture of {L}.",
    "there {be} {L} in this image.",
    "a view of {L}.",
    "a scene with {L}.",
    "a photo showing {L}.",
    "an image of {L}.",
    "{L} can be seen in this photo.",
    "this picture shows {L}.",
)
_SINGLE_TEMPLATES = ("close-up of {L}.", "a photo of {L}.", "{L} in the picture.")
_PAIR_TEMPLATES = ("{A} next to {B}.", "{A} beside {B}.", "{A} near {B} in this scene.")
_PLACE_TEMPLATES = (
    "{T} {prep} the {S}.",
    "there {be} {T} {prep} the {S}.",
    "a picture of {T} {prep} the {S}.",
    "a view of the {S} with {T}.",
    "in this image, {T} {prep} the {S}.",
)


@dataclass(frozen=True)
class CaptionText:
    """A caption and which catalogue classes it mentions."""

    text: str
    mentions: tuple[int, ...]
    colour_word: bool


def _article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def _join(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _noun(spec: ClassSpec, rng: np.random.Generator) -> str:
    if spec.synonyms and rng.random() < SYNONYM_P:
        return spec.synonyms[int(rng.integers(len(spec.synonyms)))]
    return spec.name


def _adjectives(spec: ClassSpec, area: float, rng: np.random.Generator) -> tuple[list[str], bool]:
    words: list[str] = []
    if area < SMALL and rng.random() < SIZE_P:
        words.append(_SMALL_WORDS[int(rng.integers(len(_SMALL_WORDS)))])
    elif area > LARGE and rng.random() < SIZE_P:
        words.append(_LARGE_WORDS[int(rng.integers(len(_LARGE_WORDS)))])
    elif rng.random() < OTHER_ADJECTIVE_P:
        words.append(_OTHER_ADJECTIVES[int(rng.integers(len(_OTHER_ADJECTIVES)))])
    colour = bool(spec.colour_words) and rng.random() < COLOUR_P
    if colour:
        words.append(spec.colour_words[int(rng.integers(len(spec.colour_words)))])
    return words, colour


def thing_phrase(spec: ClassSpec, count: int, area: float, rng: np.random.Generator) -> tuple[str, bool, bool]:
    """A noun phrase for ``count`` visible instances: (phrase, is plural, uses a colour word)."""
    noun = _noun(spec, rng)
    words, colour = _adjectives(spec, area, rng)
    if count == 1:
        return _article(" ".join([*words, noun])), False, colour
    body = " ".join([*words, spec.plural(noun)])
    if rng.random() < 0.5:
        return f"{_NUMBERS.get(count, 'many')} {body}", True, colour
    choice = int(rng.integers(len(_VAGUE) + 1))
    return (body if choice == len(_VAGUE) else f"{_VAGUE[choice]} {body}"), True, colour


def stuff_noun(spec: ClassSpec, rng: np.random.Generator) -> tuple[str, bool]:
    """A stuff noun with an occasional colour word: (phrase without article, uses a colour word)."""
    noun = _noun(spec, rng)
    if spec.colour_words and rng.random() < COLOUR_P:
        return f"{spec.colour_words[int(rng.integers(len(spec.colour_words)))]} {noun}", True
    return noun, False


def _caption(
    facts: dict[int, tuple[int, float]], catalogue: tuple[ClassSpec, ...], rng: np.random.Generator
) -> CaptionText:
    present = list(facts)
    weights = np.array(_MENTION_WEIGHTS[: min(MAX_MENTIONS, len(present))])
    k = int(rng.choice(len(weights), p=weights / weights.sum())) + 1
    pick = np.array([THING_WEIGHT if catalogue[c].isthing else 1.0 for c in present])
    chosen = [present[i] for i in sorted(rng.choice(len(present), size=k, replace=False, p=pick / pick.sum()))]
    chosen = [chosen[i] for i in rng.permutation(k)]
    things = [c for c in chosen if catalogue[c].isthing]
    stuff = [c for c in chosen if not catalogue[c].isthing]
    colour = False

    def thing(c: int) -> tuple[str, bool]:
        nonlocal colour
        phrase, plural, used = thing_phrase(catalogue[c], *facts[c], rng)
        colour |= used
        return phrase, plural

    def stuff_np(c: int) -> str:
        nonlocal colour
        phrase, used = stuff_noun(catalogue[c], rng)
        colour |= used
        return phrase

    if things and stuff and rng.random() < 0.6:
        place, rest = stuff[0], stuff[1:]
        phrases = [thing(c) for c in things]
        listed = _join([p for p, _ in phrases] + ["the " + stuff_np(c) for c in rest])
        template = _PLACE_TEMPLATES[int(rng.integers(len(_PLACE_TEMPLATES)))]
        text = template.format(
            T=listed,
            S=stuff_np(place),
            prep=catalogue[place].preposition,
            be="are" if phrases[0][1] or len(phrases) + len(rest) > 1 else "is",
        )
    elif len(things) >= 2 and not stuff and rng.random() < 0.4:
        (a, _), (b, _) = thing(things[0]), thing(things[1])
        text = _PAIR_TEMPLATES[int(rng.integers(len(_PAIR_TEMPLATES)))].format(A=a, B=b)
        chosen = things[:2]
    else:
        phrases = [(thing(c) if catalogue[c].isthing else ("the " + stuff_np(c), False)) for c in chosen]
        if len(phrases) == 1 and rng.random() < 0.3:
            template = _SINGLE_TEMPLATES[int(rng.integers(len(_SINGLE_TEMPLATES)))]
        else:
            template = _LIST_TEMPLATES[int(rng.integers(len(_LIST_TEMPLATES)))]
        text = template.format(
            L=_join([p for p, _ in phrases]), be="are" if phrases[0][1] or len(phrases) > 1 else "is"
        )
    return CaptionText(text[0].upper() + text[1:], tuple(sorted(chosen)), colour)


def write_captions(
    facts: dict[int, tuple[int, float]], catalogue: tuple[ClassSpec, ...], count: int, rng: np.random.Generator
) -> list[CaptionText]:
    """``count`` captions of an image whose visible classes are ``facts``
    (catalogue index → (instances, largest visible area share)); distinct when
    a few redraws allow it."""
    if not facts:
        raise ValueError("an image without visible classes cannot be captioned")
    captions: list[CaptionText] = []
    for _ in range(count):
        caption = _caption(facts, catalogue, rng)
        for _retry in range(5):
            if caption.text not in {c.text for c in captions}:
                break
            caption = _caption(facts, catalogue, rng)
        captions.append(caption)
    return captions
