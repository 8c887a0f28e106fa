"""Scenes: which classes an image shows, where they lie, who occludes whom, and the pixels.

Planning deals classes to the images of a split from shuffled decks (one for
stuff, one for things), so every class appears about equally often even in a
small benchmark; composition and painting use the image's own random stream,
so images can be made in any order or in parallel with identical bytes.

Remnant rule: after layout, a thing whose *visible* area (after occlusion by
later things) is below ``min_visible`` of the image is removed from the scene
before painting, and a stuff band whose visible area is below it is merged into
its neighbour band (a lone band stays, however little of it shows). So the image,
the labels, the instances and the captions always agree, and no segment is
smaller than ``min_visible`` except, rarely, a lone stuff band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.world.catalogue import ClassSpec
from pipeline.world.config import WorldConfig
from pipeline.world.seeding import STREAM_PLAN, rng_for
from pipeline.world.shapes import EXTENT, Outline, outline_level, sample_outline
from pipeline.world.textures import paint_stuff, paint_thing

_STUFF_COUNT_WEIGHTS = (0.3, 0.45, 0.25)  # 1, 2, 3 bands (restricted to the configured range)
_THING_CLASS_WEIGHTS = (0.35, 0.4, 0.25)  # 1, 2, 3 distinct thing classes
_INSTANCE_WEIGHTS = (0.65, 0.25, 0.1)  # 1, 2, 3 instances of a class


@dataclass(frozen=True)
class ScenePlan:
    """Catalogue indices of an image's stuff (top to bottom) and things with instance counts."""

    stuff: tuple[int, ...]
    things: tuple[tuple[int, int], ...]


class _Deck:
    """Deals distinct cards from consecutive shuffled copies of ``members``."""

    def __init__(self, members: list[int], rng: np.random.Generator):
        self.members, self.rng = members, rng
        self.cards: list[int] = []

    def deal(self, count: int) -> list[int]:
        hand: list[int] = []
        position = 0
        while len(hand) < count:
            if position >= len(self.cards):
                self.cards.extend(int(c) for c in self.rng.permutation(self.members))
            card = self.cards[position]
            if card in hand:
                position += 1
            else:
                hand.append(self.cards.pop(position))
        return hand


def _weighted_count(rng: np.random.Generator, weights: tuple[float, ...], lo: int, hi: int) -> int:
    options = [n for n in range(1, len(weights) + 1) if lo <= n <= hi] or [max(lo, min(hi, len(weights)))]
    p = np.array([weights[n - 1] if n <= len(weights) else weights[-1] for n in options])
    return int(rng.choice(options, p=p / p.sum()))


def plan_split(
    catalogue: tuple[ClassSpec, ...], count: int, config: WorldConfig, split: str, things: Sequence[int] | None = None
) -> list[ScenePlan]:
    """The plans of the ``count`` images of ``split``, from the split's planning stream; the things are
    dealt from ``things`` (catalogue indices; default every thing)."""
    rng = rng_for(config.seed, STREAM_PLAN, split)
    stuff = [i for i, spec in enumerate(catalogue) if not spec.isthing]
    things = [i for i, spec in enumerate(catalogue) if spec.isthing] if things is None else list(things)
    stuff_deck, thing_deck = _Deck(stuff, rng), _Deck(things, rng)
    plans = []
    for _ in range(count):
        n_stuff = _weighted_count(rng, _STUFF_COUNT_WEIGHTS, *config.stuff_per_image)
        bands = stuff_deck.deal(min(n_stuff, len(stuff)))
        # the sky, when present, is the top band
        bands.sort(key=lambda i: catalogue[i].name != "sky")
        lo, hi = config.things_per_image
        n_classes = min(_weighted_count(rng, _THING_CLASS_WEIGHTS, 1, hi), len(things))
        classes = thing_deck.deal(n_classes)
        counts = [1] * n_classes
        target = int(np.clip(sum(int(rng.choice(3, p=_INSTANCE_WEIGHTS)) + 1 for _ in classes), max(lo, n_classes), hi))
        while sum(counts) < target:
            counts[int(rng.integers(n_classes))] += 1
        plans.append(ScenePlan(tuple(bands), tuple(zip(classes, counts))))
    return plans


@dataclass(frozen=True)
class ThingGeometry:
    """Where one thing instance lies: centre and radius in pixels, aspect, rotation, outline."""

    cx: float
    cy: float
    radius: float
    aspect: float
    rotation: float
    outline: Outline

    def box(self, size: int) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` pixel bounds (clipped to the image) that contain the outline."""
        reach = self.radius * EXTENT * max(np.sqrt(self.aspect), 1 / np.sqrt(self.aspect)) + 1
        y0, y1 = int(np.floor(self.cy - reach)), int(np.ceil(self.cy + reach)) + 1
        x0, x1 = int(np.floor(self.cx - reach)), int(np.ceil(self.cx + reach)) + 1
        return max(y0, 0), min(y1, size), max(x0, 0), min(x1, size)

    def local(self, size: int) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
        """The box and the local coordinates ``(u, v)`` of its pixel centres."""
        y0, y1, x0, x1 = box = self.box(size)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
        dx, dy = xs - self.cx, ys - self.cy
        c, s = np.cos(np.radians(self.rotation)), np.sin(np.radians(self.rotation))
        stretch = np.sqrt(self.aspect)
        u = (dx * c + dy * s) / (self.radius * stretch)
        v = (-dx * s + dy * c) / (self.radius / stretch)
        return box, u, v


@dataclass
class Layer:
    """One drawn region: a stuff band (``geometry`` None) or a thing instance; ``mask`` is its full extent."""

    class_index: int
    mask: np.ndarray
    geometry: ThingGeometry | None = None


@dataclass
class Scene:
    """Layers in drawing order (stuff bands first) and ``owner``: the visible layer of each pixel."""

    size: int
    layers: list[Layer]
    owner: np.ndarray
    dropped: int

    def visible(self, layer: int) -> np.ndarray:
        return self.owner == layer

    def class_map(self) -> np.ndarray:
        """``H×W`` catalogue index of the visible class at each pixel."""
        classes = np.array([layer.class_index for layer in self.layers], dtype=np.int32)
        return classes[self.owner]

    def facts(self) -> dict[int, tuple[int, float]]:
        """Catalogue index → (visible instances or bands, largest visible area as a share of the image)."""
        areas = np.bincount(self.owner.ravel(), minlength=len(self.layers)) / self.owner.size
        facts: dict[int, tuple[int, float]] = {}
        for index, layer in enumerate(self.layers):
            count, largest = facts.get(layer.class_index, (0, 0.0))
            facts[layer.class_index] = (count + 1, max(largest, float(areas[index])))
        return dict(sorted(facts.items()))


def _bands(stuff: tuple[int, ...], size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Masks of wavy horizontal bands, top to bottom, covering the image."""
    n = len(stuff)
    if n == 1:
        cuts = []
    elif n == 2:
        cuts = [rng.uniform(0.3, 0.7)]
    else:
        cuts = [rng.uniform(0.2, 0.42), rng.uniform(0.58, 0.8)]
    ys, xs = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    band = np.zeros((size, size), dtype=np.int8)
    for cut in cuts:
        boundary = cut + rng.uniform(0, 0.05) * np.sin(
            2 * np.pi * rng.uniform(0.5, 2.0) * xs + rng.uniform(0, 2 * np.pi)
        )
        band += (ys > boundary).astype(np.int8)
    return [band == k for k in range(n)]


def compose(plan: ScenePlan, catalogue: tuple[ClassSpec, ...], config: WorldConfig, rng: np.random.Generator) -> Scene:
    """Lay out a planned scene (bands, then things in random order) and apply the remnant rule."""
    size = config.image_size
    layers = [Layer(index, mask) for index, mask in zip(plan.stuff, _bands(plan.stuff, size, rng))]
    instances = [index for index, count in plan.things for _ in range(count)]
    lo, hi = config.thing_scale
    for index in (instances[i] for i in rng.permutation(len(instances))):
        spec = catalogue[index]
        diameter = lo + (hi - lo) * np.sqrt(rng.random())
        geometry = ThingGeometry(
            cx=float(rng.uniform(0.12, 0.88) * size),
            cy=float(rng.uniform(0.12, 0.88) * size),
            radius=float(diameter * size / 2),
            aspect=float(spec.aspect * np.exp(rng.normal(0, 0.12))),
            rotation=float(rng.uniform(-spec.max_rotation, spec.max_rotation)),
            outline=sample_outline(spec.outline, rng),
        )
        (y0, y1, x0, x1), u, v = geometry.local(size)
        mask = np.zeros((size, size), dtype=bool)
        mask[y0:y1, x0:x1] = outline_level(geometry.outline, u, v) <= 1.0
        layers.append(Layer(index, mask, geometry))

    minimum = config.min_visible * size * size
    n_stuff = len(plan.stuff)
    owner = _owners(layers, size)
    keep = [i for i in range(len(layers)) if i < n_stuff or (owner == i).sum() >= max(minimum, 1)]
    dropped = len(layers) - len(keep)
    layers = [layers[i] for i in keep]
    owner = _owners(layers, size)
    # merge stuff bands that things hide almost entirely into the band above (or below)
    merged = True
    while merged and n_stuff > 1:
        merged = False
        for k in range(n_stuff):
            if (owner == k).sum() < max(minimum, 1):
                into = k - 1 if k > 0 else 1
                layers[into].mask = layers[into].mask | layers[k].mask
                del layers[k]
                n_stuff -= 1
                dropped += 1
                owner = _owners(layers, size)
                merged = True
                break
    return Scene(size, layers, owner, dropped)


def _owners(layers: list[Layer], size: int) -> np.ndarray:
    owner = np.zeros((size, size), dtype=np.int16)
    for index, layer in enumerate(layers):
        owner[layer.mask] = index
    return owner


def render(scene: Scene, catalogue: tuple[ClassSpec, ...], rng: np.random.Generator) -> np.ndarray:
    """Paint the scene: ``H×W×3 uint8`` RGB."""
    size = scene.size
    ys, xs = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    canvas = np.zeros((size, size, 3), dtype=np.float32)
    for layer in scene.layers:
        spec = catalogue[layer.class_index]
        if layer.geometry is None:
            rows = np.flatnonzero(layer.mask.any(axis=1))  # a band spans a range of rows: paint only those
            r0, r1 = int(rows[0]), int(rows[-1]) + 1
            band = layer.mask[r0:r1]
            canvas[r0:r1][band] = paint_stuff(spec.texture, xs[r0:r1], ys[r0:r1], rng)[band]
            continue
        (y0, y1, x0, x1), u, v = layer.geometry.local(size)
        level = outline_level(layer.geometry.outline, u, v)
        rgb = paint_thing(spec.texture, layer.geometry.outline, u, v, level, layer.geometry.radius, rng)
        # soft shading towards the outline gives things some volume
        rgb = rgb * (1.0 - 0.18 * np.clip(level, 0, 1) ** 3)[..., None]
        inside = layer.mask[y0:y1, x0:x1]
        canvas[y0:y1, x0:x1][inside] = rgb[inside]
    canvas = canvas * np.float32(rng.uniform(0.92, 1.08)) + 3.0 * rng.standard_normal(canvas.shape, dtype=np.float32)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
