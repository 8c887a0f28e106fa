"""Scene planning, composition (occlusion, remnant rule) and painting."""

from __future__ import annotations

from collections import Counter

import numpy as np

from pipeline.world.catalogue import CATALOGUE
from pipeline.world.config import WorldConfig
from pipeline.world.scene import ScenePlan, compose, plan_split, render
from pipeline.world.seeding import STREAM_IMAGE, rng_for

CONFIG = WorldConfig(train_images=10, benchmark_images=10, image_size=96)


def test_plans_respect_ranges_and_balance_classes() -> None:
    plans = plan_split(CATALOGUE, 340, CONFIG, "benchmark")
    assert plans == plan_split(CATALOGUE, 340, CONFIG, "benchmark")
    assert plans != plan_split(CATALOGUE, 340, CONFIG, "train")
    things = Counter()
    for plan in plans:
        assert 1 <= len(plan.stuff) <= 3 and len(set(plan.stuff)) == len(plan.stuff)
        assert all(not CATALOGUE[i].isthing for i in plan.stuff)
        assert 1 <= sum(n for _, n in plan.things) <= 5
        assert len({c for c, _ in plan.things}) == len(plan.things)
        if any(CATALOGUE[i].name == "sky" for i in plan.stuff):
            assert CATALOGUE[plan.stuff[0]].name == "sky"
        things.update(c for c, _ in plan.things)
    # dealt from shuffled decks: every thing class appears in nearly the same number of images
    assert len(things) == sum(spec.isthing for spec in CATALOGUE)
    assert max(things.values()) - min(things.values()) <= 2


def _scene(index: int, plan: ScenePlan | None = None, config: WorldConfig = CONFIG):
    plan = plan or plan_split(CATALOGUE, index + 1, config, "train")[index]
    rng = rng_for(config.seed, STREAM_IMAGE, "train", index)
    return plan, compose(plan, CATALOGUE, config, rng), rng


def test_composition_owner_and_remnant_rule() -> None:
    for index in range(25):
        plan, scene, _ = _scene(index)
        assert scene.owner.shape == (96, 96)
        n_stuff = sum(layer.geometry is None for layer in scene.layers)
        assert all(layer.geometry is None for layer in scene.layers[:n_stuff])
        areas = np.bincount(scene.owner.ravel(), minlength=len(scene.layers))
        large = areas >= CONFIG.min_visible * 96 * 96
        assert large[n_stuff:].all()  # no thing remnant survives
        assert large[:n_stuff].all() or n_stuff == 1  # nor a stuff band, unless it is the only one
        # a thing's visible pixels are its own extent minus what later layers cover
        for k, layer in enumerate(scene.layers):
            later = np.zeros_like(layer.mask)
            for other in scene.layers[k + 1 :]:
                later |= other.mask
            assert np.array_equal(scene.visible(k), layer.mask & ~later)
        planned = sum(n for _, n in plan.things) + len(plan.stuff)
        assert len(scene.layers) + scene.dropped == planned
        facts = scene.facts()
        assert sum(count for count, _ in facts.values()) == len(scene.layers)


def test_tiny_remnants_are_dropped() -> None:
    # many large things piled up: the early ones end up hidden and must disappear
    plan = ScenePlan((0,), ((10, 3), (11, 3)))
    config = WorldConfig(image_size=96, thing_scale=(0.9, 1.0), things_per_image=(1, 8), min_visible=0.05)
    dropped = 0
    for index in range(6):
        _, scene, _ = _scene(index, plan, config)
        dropped += scene.dropped
        areas = np.bincount(scene.owner.ravel(), minlength=len(scene.layers))
        assert (areas[1:] >= 0.05 * 96 * 96).all()  # every thing; the lone band may be nearly hidden
    assert dropped > 0


def test_hidden_stuff_bands_merge_into_a_neighbour() -> None:
    plan = ScenePlan((0, 1, 2), ((10, 4), (11, 4)))
    config = WorldConfig(image_size=96, thing_scale=(0.95, 1.0), things_per_image=(1, 8), min_visible=0.08)
    merged = 0
    for index in range(12):
        _, scene, _ = _scene(index, plan, config)
        bands = [layer for layer in scene.layers if layer.geometry is None]
        merged += 3 - len(bands)
        stuff_mask = np.zeros((96, 96), dtype=bool)
        for band in bands:
            assert not (stuff_mask & band.mask).any()  # bands never overlap ...
            stuff_mask |= band.mask
        assert stuff_mask.all()  # ... and still cover the image
        areas = np.bincount(scene.owner.ravel(), minlength=len(scene.layers))
        assert len(bands) == 1 or (areas[: len(bands)] >= 0.08 * 96 * 96).all()
    assert merged > 0


def test_render_is_deterministic() -> None:
    _, scene, rng = _scene(3)
    image = render(scene, CATALOGUE, rng)
    _plan, scene2, rng2 = _scene(3)
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    assert np.array_equal(image, render(scene2, CATALOGUE, rng2))
    assert image.std() > 10
