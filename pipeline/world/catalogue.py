"""The classes of the demo world: names, synonyms, and how each one looks.

A tiny CLIP trained for minutes learns colour and texture but not outline, so
every class is told apart by its *palette and texture* (the way a zebra has
stripes and a lemon is yellow); outlines only add variety. Texture families:
stripes, dots, checker, rings, speckle, gradient, rim (solid with a contrasting
rim), zigzag, wedges, patches. Within a family the palettes are far apart.

Every name, synonym and plural is an English noun that spaCy's small English
model tags as NOUN in caption sentences (checked by the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.world.seeding import STREAM_UNSEEN, rng_for

RGB = tuple[int, int, int]

_IRREGULAR_PLURALS = {"calf": "calves", "loaf": "loaves", "cattle": "cattle"}


def plural_of(noun: str) -> str:
    """English plural of a countable noun in this catalogue."""
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


@dataclass(frozen=True)
class Texture:
    """How a class is painted.

    ``family`` selects the painter in :mod:`pipeline.world.textures`; ``palette``
    holds its 2–4 colours (the first is the base). ``period`` is the texture's
    repeat in object radii (things) or image sides (stuff); ``angle`` in degrees;
    ``duty`` the share of a period in the second colour; ``wobble`` bends lines;
    ``size`` is a family-specific size (dot radius, rim width, line width).
    """

    family: str
    palette: tuple[RGB, ...]
    period: float = 0.4
    angle: float = 0.0
    duty: float = 0.5
    wobble: float = 0.0
    size: float = 0.3


@dataclass(frozen=True)
class ClassSpec:
    """One class of the world.

    ``colour_words`` are the colour adjectives that truthfully describe it (used
    rarely in captions; each is shared by several classes). Things have an
    outline family (:mod:`pipeline.world.shapes`), a base aspect ratio and the
    largest rotation they are drawn with; stuff has the preposition captions use
    to place things on it.
    """

    name: str
    isthing: bool
    texture: Texture
    synonyms: tuple[str, ...] = ()
    colour_words: tuple[str, ...] = ()
    outline: str = "ellipse"
    aspect: float = 1.0
    max_rotation: float = 180.0
    preposition: str = "on"

    @property
    def nouns(self) -> tuple[str, ...]:
        """The display name followed by its synonyms."""
        return (self.name, *self.synonyms)

    def plural(self, noun: str) -> str:
        return plural_of(noun)


def _stuff(name: str, family: str, palette, synonyms=(), colours=(), preposition="on", **texture) -> ClassSpec:
    return ClassSpec(
        name,
        False,
        Texture(family, tuple(palette), **texture),
        tuple(synonyms),
        tuple(colours),
        preposition=preposition,
    )


def _thing(name: str, family: str, palette, outline, synonyms=(), colours=(), aspect=1.0, rotation=180.0, **texture):
    return ClassSpec(
        name,
        True,
        Texture(family, tuple(palette), **texture),
        tuple(synonyms),
        tuple(colours),
        outline=outline,
        aspect=aspect,
        max_rotation=rotation,
    )


BLACK, WHITE = (25, 25, 28), (238, 238, 232)

STUFF: tuple[ClassSpec, ...] = (
    _stuff("sky", "sky", [(70, 130, 210), (160, 200, 240), (250, 250, 252)], (), ("blue",), "under"),
    _stuff("grass", "blades", [(60, 140, 45), (35, 95, 30), (120, 185, 70)], ("lawn",), ("green",), "on"),
    _stuff("water", "ripples", [(25, 80, 150), (50, 120, 185), (170, 215, 235)], ("sea",), ("blue",), "in"),
    _stuff("sand", "grain", [(222, 196, 140), (196, 165, 110), (240, 222, 180)], ("beach",), ("yellow",), "on"),
    _stuff("snow", "snow", [(244, 247, 252), (205, 215, 232), (255, 255, 255)], (), ("white",), "in"),
    _stuff("road", "road", [(72, 72, 76), (48, 48, 52), (235, 235, 225)], ("street", "asphalt"), ("gray",), "on"),
    _stuff("wall", "bricks", [(160, 60, 40), (120, 40, 30), (205, 200, 190)], ("brickwork",), ("red",), "in front of"),
    _stuff("floor", "planks", [(150, 95, 50), (110, 65, 30), (185, 130, 75)], ("parquet",), ("brown",), "on"),
    _stuff(
        "gravel",
        "pebbles",
        [(140, 132, 120), (95, 88, 80), (185, 178, 165), (40, 36, 32)],
        ("shingle",),
        ("gray",),
        "on",
    ),
    _stuff("carpet", "lattice", [(125, 20, 45), (25, 35, 95), (220, 170, 50)], ("rug",), ("red",), "on"),
)

THINGS: tuple[ClassSpec, ...] = (
    # stripes
    _thing("zebra", "stripes", [WHITE, BLACK], "blob", (), ("black", "white"), 1.5, period=0.3, angle=80, wobble=0.08),
    _thing(
        "tiger",
        "stripes",
        [(225, 100, 20), (45, 20, 10)],
        "blob",
        (),
        ("orange",),
        1.6,
        period=0.42,
        angle=100,
        duty=0.3,
        wobble=0.15,
    ),
    _thing(
        "bee",
        "stripes",
        [(250, 205, 20), (30, 25, 20)],
        "ellipse",
        ("bumblebee",),
        ("yellow", "black"),
        1.4,
        period=0.55,
        angle=0,
        duty=0.45,
    ),
    _thing(
        "candy",
        "stripes",
        [WHITE, (215, 25, 40)],
        "ellipse",
        ("lollipop",),
        ("red", "white"),
        1.0,
        period=0.26,
        angle=45,
        duty=0.4,
    ),
    # dots
    _thing(
        "ladybug", "dots", [(210, 30, 30), (20, 20, 20)], "ellipse", ("ladybird",), ("red",), 1.2, period=0.6, size=0.22
    ),
    _thing(
        "dalmatian", "dots", [(245, 245, 240), (30, 30, 30)], "blob", ("dog",), ("white",), 1.4, period=0.32, size=0.1
    ),
    _thing("frog", "dots", [(120, 200, 40), (30, 80, 20)], "blob", ("toad",), ("green",), 1.2, period=0.45, size=0.14),
    _thing(
        "pizza", "dots", [(240, 190, 80), (165, 35, 25), (200, 120, 40)], "polygon3", (), (), 1.0, period=0.5, size=0.15
    ),
    _thing(
        "donut",
        "sprinkles",
        [(240, 140, 180), (250, 250, 250), (60, 130, 230), (250, 220, 40)],
        "annulus",
        ("doughnut",),
        ("pink",),
        1.0,
        period=0.2,
        size=0.06,
    ),
    _thing(
        "peacock",
        "eyes",
        [(0, 128, 128), (20, 30, 110), (220, 180, 40)],
        "sector",
        ("bird",),
        (),
        1.0,
        30,
        period=0.45,
        size=0.12,
    ),
    # checker
    _thing(
        "chessboard", "checker", [BLACK, WHITE], "square", ("checkerboard",), ("black", "white"), 1.0, 25, period=0.3
    ),
    _thing(
        "tablecloth",
        "gingham",
        [WHITE, (130, 170, 235), (35, 80, 190)],
        "square",
        ("cloth",),
        ("blue",),
        1.2,
        30,
        period=0.22,
    ),
    _thing(
        "pineapple", "checker", [(225, 180, 40), (120, 80, 20)], "egg", (), ("yellow",), 1.5, 30, period=0.28, angle=45
    ),
    _thing(
        "turtle",
        "checker",
        [(95, 120, 40), (70, 45, 20)],
        "polygon6",
        ("tortoise",),
        ("green",),
        1.2,
        period=0.45,
        angle=45,
    ),
    # rings
    _thing("target", "rings", [WHITE, (220, 25, 25)], "ellipse", ("bullseye",), ("red", "white"), 1.0, period=0.33),
    _thing(
        "log",
        "rings",
        [(215, 175, 120), (135, 85, 45)],
        "ellipse",
        ("stump",),
        ("brown",),
        1.0,
        period=0.16,
        duty=0.3,
        wobble=0.05,
    ),
    _thing("onion", "rings", [(235, 215, 235), (135, 45, 120)], "egg", (), ("purple",), 1.1, period=0.22, duty=0.35),
    # speckle
    _thing(
        "sponge", "speckle", [(245, 225, 90), (205, 170, 40)], "square", (), ("yellow",), 1.4, period=0.18, duty=0.35
    ),
    _thing(
        "rock",
        "speckle",
        [(125, 125, 130), (50, 50, 55), (215, 215, 215)],
        "blob",
        ("stone", "boulder"),
        ("gray",),
        1.3,
        period=0.09,
    ),
    _thing(
        "bread",
        "speckle",
        [(200, 140, 70), (235, 205, 150)],
        "square",
        ("loaf",),
        ("brown",),
        1.7,
        25,
        period=0.25,
        duty=0.45,
    ),
    # gradient
    _thing("balloon", "gradient", [(255, 170, 190), (210, 20, 50), (120, 0, 25)], "egg", (), ("red",), 1.25, 25),
    _thing("peach", "gradient", [(255, 220, 120), (250, 140, 80), (215, 60, 50)], "ellipse", (), ("orange",), 1.0),
    _thing(
        "pearl", "gradient", [(255, 255, 255), (215, 205, 230), (150, 140, 175)], "ellipse", ("bead",), ("white",), 1.0
    ),
    # rim
    _thing(
        "lemon", "rim", [(250, 235, 40), (150, 160, 20), (255, 255, 200)], "ellipse", (), ("yellow",), 1.45, size=0.16
    ),
    _thing("plum", "rim", [(90, 20, 90), (40, 5, 45), (200, 160, 210)], "ellipse", (), ("purple",), 1.1, size=0.18),
    _thing("egg", "rim", [(245, 232, 205), (190, 150, 110), (255, 255, 255)], "egg", (), ("white",), 1.3, size=0.1),
    _thing(
        "coin",
        "rim",
        [(175, 180, 190), (90, 95, 105), (235, 240, 245)],
        "ellipse",
        ("penny",),
        ("gray",),
        1.0,
        size=0.22,
    ),
    _thing("ring", "rim", [(225, 175, 40), (140, 95, 10), (255, 240, 160)], "annulus", ("hoop",), (), 1.0, size=0.3),
    # zigzag
    _thing(
        "snake",
        "zigzag",
        [(120, 150, 40), (240, 220, 130), (50, 60, 20)],
        "wave",
        ("serpent",),
        ("green",),
        1.0,
        period=0.2,
        wobble=0.12,
        angle=90,
    ),
    _thing(
        "sweater",
        "zigzag",
        [(30, 45, 110), (240, 240, 240), (200, 30, 45)],
        "shirt",
        ("jumper", "pullover"),
        ("blue",),
        1.0,
        20,
        period=0.24,
        wobble=0.1,
    ),
    # wedges
    _thing(
        "umbrella", "wedges", [(230, 30, 40), (250, 220, 30)], "sector", ("parasol",), ("red",), 1.0, 30, period=8.0
    ),
    _thing(
        "kite", "wedges", [(30, 90, 220), (250, 200, 20), (30, 170, 80)], "polygon4", (), ("blue",), 1.4, 40, period=3.0
    ),
    # patches
    _thing(
        "giraffe", "patches", [(205, 125, 40), (245, 230, 200)], "blob", (), ("brown",), 1.6, period=0.35, size=0.07
    ),
    _thing(
        "cow",
        "cells",
        [(245, 245, 245), (25, 25, 25)],
        "blob",
        ("calf",),
        ("black", "white"),
        1.5,
        period=0.5,
        duty=0.35,
    ),
)

CATALOGUE: tuple[ClassSpec, ...] = STUFF + THINGS


def choose_unseen(catalogue: tuple[ClassSpec, ...], fraction: float, seed: int) -> frozenset[str]:
    """Names of the classes left out of the training labels.

    Stratified: ``round(fraction * n)`` of the stuff and of the things, each at
    least one when ``fraction > 0``; drawn from ``seed`` alone.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"unseen_fraction must lie in [0, 1), got {fraction}")
    rng = rng_for(seed, STREAM_UNSEEN)
    unseen: set[str] = set()
    for isthing in (False, True):
        names = sorted(spec.name for spec in catalogue if spec.isthing == isthing)
        count = int(round(fraction * len(names)))
        if fraction > 0:
            count = max(count, 1)
        count = min(count, len(names) - 1)
        unseen.update(names[i] for i in rng.choice(len(names), size=count, replace=False))
    return frozenset(unseen)


def classes_json(catalogue: tuple[ClassSpec, ...], unseen: frozenset[str]) -> list[dict]:
    """The ``coco/classes.json`` records: ids 1..K in catalogue order."""
    return [
        {
            "id": index + 1,
            "name": spec.name,
            "synonyms": list(spec.synonyms),
            "isthing": int(spec.isthing),
            "seen": int(spec.name not in unseen),
        }
        for index, spec in enumerate(catalogue)
    ]
