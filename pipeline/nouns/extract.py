"""Nouns of image captions with spaCy: the vocabulary the mining job pairs with masks.

The rules below are the contract between captions and mining; a class
vocabulary matched against these nouns later must be normalised the same way
(lower-case, NFC, head noun lemmatised).

Text
    Each caption is Unicode-NFC normalised, its whitespace runs collapsed to one
    space and lower-cased *before* tagging. Caption capitalisation carries no
    information here, and the small English tagger otherwise tags
    sentence-initial common nouns as proper nouns ("Closeup of …",
    "A Red Bus …"). Empty and whitespace-only captions yield no nouns.

Nouns
    Tokens tagged ``NOUN`` or ``PROPN``. Proper nouns are kept because the small
    tagger gives ``PROPN`` to many common nouns of short captions ("giraffe
    standing next to a tree"); the real proper names that slip through
    ("london") pair with no region better than the image's other nouns and are
    filtered by the mining scores. Each noun is emitted as its spaCy lemma,
    lower-cased ("zebras" → "zebra", "men" → "man"). A token counts only if it
    is word-like: letters, digits, hyphens and apostrophes, at least one
    letter; an emitted noun has at least two characters (drops emoji, numbers,
    tokeniser debris).

Compounds
    A maximal run of adjacent noun tokens — separated by one space, or joined by
    a hyphen without spaces ("t-shirt") — is one compound whose *last* token is
    the head. The head lemma is always emitted; with ``compounds=True`` the
    phrase is emitted too: the modifiers' lower-cased surface forms and the
    head lemma, joined as in the text, keeping at most ``max_compound_words``
    words (the last ones): "traffic lights" → "light", "traffic light";
    "sports cars" → "car", "sports car"; "t-shirts" → "shirt", "t-shirt".
    Modifiers are never emitted alone: the "traffic" of a traffic light is not
    an object in the picture. The run is taken from the tags, not from the
    dependency parse: on short captions the small parser often misattaches
    compounds ("a red fire hydrant" parses with "fire" as the head), and
    skipping the parser makes tagging about 30 % faster.

Stop list
    Non-visual nouns ("picture", "side", "group" …) from params. A noun equal
    to a stop-list entry is dropped, and so is a compound phrase whose head is
    on the list or which is itself on it ("group photo"). Entries are
    normalised like captions (:func:`make_stoplist`).

Output
    :func:`extract_nouns` returns every mention in text order, duplicates kept,
    so that a caller can count mentions.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Token

NOUN_POS = frozenset({"NOUN", "PROPN"})
DEFAULT_MAX_COMPOUND_WORDS = 3
# Components the rules above need: tokens, tags → POS, lemmas.
REQUIRED_COMPONENTS = ("tok2vec", "tagger", "attribute_ruler", "lemmatizer")
# Not needed: the parse (compounds come from tags, see the module docstring) and entities.
EXCLUDED_COMPONENTS = ("parser", "ner", "senter")


class SpacyModelError(RuntimeError):
    """The configured spaCy model is not installed or lacks a needed component."""


_WORDLIKE = re.compile(r"^[\w'’-]+$")
_WHITESPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, stripped, lower-cased."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip().lower()


def make_stoplist(words: Iterable[str]) -> frozenset[str]:
    """Normalise stop-list entries like caption text; refuse non-strings and empties."""
    stoplist = set()
    for word in words:
        if not isinstance(word, str) or not normalise_text(word):
            raise ValueError(f"stop-list entry {word!r} is not a non-empty string")
        stoplist.add(normalise_text(word))
    return frozenset(stoplist)


def load_nlp(model_name: str) -> Language:
    """Load a spaCy pipeline with only the components noun extraction needs.

    Raises :class:`SpacyModelError` naming the model when it is not installed,
    or when it lacks one of :data:`REQUIRED_COMPONENTS`.
    """
    try:
        nlp = spacy.load(model_name, exclude=list(EXCLUDED_COMPONENTS))
    except OSError as exc:
        raise SpacyModelError(
            f"spaCy model '{model_name}' cannot be loaded (is its package installed?): {exc}"
        ) from None
    missing = [name for name in REQUIRED_COMPONENTS if name not in nlp.pipe_names]
    if missing:
        raise SpacyModelError(f"spaCy model '{model_name}' lacks the components {missing} (has {nlp.pipe_names})")
    return nlp


def _is_wordlike(text: str) -> bool:
    return bool(_WORDLIKE.match(text)) and any(ch.isalpha() for ch in text) and "_" not in text


def _is_noun(token: Token) -> bool:
    return token.pos_ in NOUN_POS and _is_wordlike(token.text)


def _separator(doc: Doc, previous: Token, token: Token) -> str | None:
    """How ``token`` continues the compound ending in ``previous``: " ", "-", or None (it does not)."""
    if previous.i == token.i - 1:
        return " " if previous.whitespace_ == " " else None
    between = doc[previous.i + 1]
    if previous.i == token.i - 2 and between.text == "-" and not previous.whitespace_ and not between.whitespace_:
        return "-"
    return None


def _noun_runs(doc: Doc) -> list[list[tuple[Token, str]]]:
    """Maximal runs of adjacent noun tokens, each token with the separator before it."""
    runs: list[list[tuple[Token, str]]] = []
    for token in doc:
        if not _is_noun(token):
            continue
        separator = _separator(doc, runs[-1][-1][0], token) if runs else None
        if separator is None:
            runs.append([(token, "")])
        else:
            runs[-1].append((token, separator))
    return runs


def _lemma(token: Token) -> str:
    return unicodedata.normalize("NFC", token.lemma_ or token.text).lower()


def extract_nouns(
    doc: Doc,
    stoplist: AbstractSet[str] = frozenset(),
    *,
    compounds: bool = True,
    max_compound_words: int = DEFAULT_MAX_COMPOUND_WORDS,
) -> list[str]:
    """Nouns of one tagged caption, by the rules of the module docstring.

    ``doc`` must come from a pipeline with POS tags and lemmas (:func:`load_nlp`)
    over :func:`normalise_text`-ed text; ``stoplist`` entries are normalised
    (:func:`make_stoplist`). Returns mentions in text order, duplicates kept.
    """
    if max_compound_words < 2:
        raise ValueError(f"max_compound_words must be at least 2, got {max_compound_words}")
    nouns: list[str] = []
    for run in _noun_runs(doc):
        head_token = run[-1][0]
        head = _lemma(head_token)
        if not _is_wordlike(head) or len(head) < 2 or head in stoplist:
            continue
        nouns.append(head)
        if not compounds or len(run) < 2:
            continue
        kept = run[-max_compound_words:]
        parts = [kept[0][0].text.lower()]
        for token, separator in kept[1:-1]:
            parts.append(separator + token.text.lower())
        parts.append(kept[-1][1] + head)
        phrase = unicodedata.normalize("NFC", "".join(parts))
        if phrase not in stoplist:
            nouns.append(phrase)
    return nouns


def nouns_of_texts(
    nlp: Language,
    texts: Sequence[str],
    stoplist: AbstractSet[str] = frozenset(),
    *,
    batch_size: int = 256,
    compounds: bool = True,
    max_compound_words: int = DEFAULT_MAX_COMPOUND_WORDS,
) -> list[list[str]]:
    """:func:`extract_nouns` of each text (normalised first), tagged in batches with ``nlp.pipe``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    docs = nlp.pipe((normalise_text(text) for text in texts), batch_size=batch_size)
    return [extract_nouns(doc, stoplist, compounds=compounds, max_compound_words=max_compound_words) for doc in docs]
