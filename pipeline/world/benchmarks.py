"""The demo world's five benchmarks: their vocabularies, scene settings and file names.

Each stands for one of the five the papers report, in that benchmark's on-disk layout
(:data:`pipeline.datasets.benchmarks.LAYOUTS`) and with a vocabulary shaped like its own:

| name | stands for | class list (size of the real one) | images show |
| --- | --- | --- | --- |
| ``ade847`` | A-847 | every world class + distractors (847) | every world class |
| ``pc459`` | PC-459 | every world class + distractors (459) | every world class |
| ``demo`` | A-150 | the world's 44 classes (kept from before the others; its name stays) | every world class |
| ``pc59`` | PC-59 | the stuff and most things of the world + distractors (59) | every world class; the rest is ignore |
| ``voc20`` | PAS-20 | 20 world things (20) | those things, fewer and larger, on stuff (background) |
| ``val`` | the validation split | ``demo``'s | every world class, images of its own |

``val`` is no test benchmark: no result row reads it, and every value chosen by measurement is
chosen on it (``python -m pipeline.project.tuning``, docs/tuning.md).

*Distractors* are names from the real benchmarks' class lists (that benchmark's own list
first, then the other shipped lists) that share no word with a world class name, synonym
or plural: like the rare classes of a wide real vocabulary they never occur in the images,
but a segmenter may predict them. Class lists are sorted by name. The world classes a list
holds are drawn from the benchmark's own vocabulary stream, stratified so that the share of
unseen classes stays the world's; each benchmark draws its images from its own split streams,
so adding or changing one leaves the others' bytes (and the training split's) unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.datasets.vocab import VOCAB_NAMES
from pipeline.datasets.vocab import class_names as vocab_class_names
from pipeline.world.catalogue import CATALOGUE, ClassSpec, plural_of
from pipeline.world.config import WorldConfig
from pipeline.world.seeding import STREAM_VOCAB, rng_for

#: The demo world's benchmarks in the papers' column order.
WORLD_BENCHMARKS = ("ade847", "pc459", "demo", "pc59", "voc20")
#: The validation benchmark: ``demo``'s class list and layout, images of its own split.
VAL_BENCHMARK = "val"
#: The real vocabulary whose size (and first distractors) each benchmark takes; ``demo`` has none.
_REAL_VOCABULARY = {"ade847": "ade847", "pc459": "pc459", "pc59": "pc59", "voc20": "voc20"}
#: World things left out of ``pc59``'s list (their pixels are ignore, as PC-59's other classes).
PC59_LEFT_OUT_THINGS = 6
#: ``voc20``: fewer, larger objects per image than the other benchmarks.
VOC_THINGS_PER_IMAGE = (1, 3)
VOC_THING_SCALE = (0.3, 0.65)
_STEMS = {
    "ade847": "ADE_val_{:08d}",
    "pc459": "2010_{:06d}",
    "demo": "demo_val_{:08d}",
    "pc59": "2010_{:06d}",
    "voc20": "2012_{:06d}",
    VAL_BENCHMARK: "val_{:08d}",
}


@dataclass(frozen=True)
class DemoBenchmark:
    """One benchmark of the demo world.

    ``class_names``: its class list in label order; ``label_of[c]``: the label index of
    catalogue class ``c``, -1 when the list lacks it (its pixels are written as ignore);
    ``things``: the catalogue things its images are dealt; ``split``: its seeding split.
    """

    name: str
    split: str
    images: int
    class_names: tuple[str, ...]
    label_of: tuple[int, ...]
    things: tuple[int, ...]
    things_per_image: tuple[int, int] | None = None
    thing_scale: tuple[float, float] | None = None

    def scene_config(self, config: WorldConfig) -> WorldConfig:
        """The world's settings with this benchmark's own scene sizes."""
        changes: dict[str, Any] = {}
        if self.things_per_image is not None:
            changes["things_per_image"] = self.things_per_image
        if self.thing_scale is not None:
            changes["thing_scale"] = self.thing_scale
        return replace(config, **changes) if changes else config

    def file_stem(self, index: int) -> str:
        return _STEMS[self.name].format(index + 1)

    @property
    def distractors(self) -> int:
        """Names in the list that are no world class."""
        return len(self.class_names) - sum(i >= 0 for i in self.label_of)


def entry_of(spec: ClassSpec) -> str:
    """A world class as a class-list entry: ``"name, synonym, ..."``."""
    return ", ".join(spec.nouns)


def _words(entry: str) -> set[str]:
    return {word for part in entry.split(",") for word in re.split(r"[\s_/-]+", part.strip().lower()) if word}


def world_words(catalogue: tuple[ClassSpec, ...] = CATALOGUE) -> frozenset[str]:
    """Every word of the world's class names and synonyms, with its plural."""
    words: set[str] = set()
    for spec in catalogue:
        for noun in spec.nouns:
            for word in noun.lower().split():
                words.update((word, plural_of(word)))
    return frozenset(words)


def distractor_names(count: int, first: str, catalogue: tuple[ClassSpec, ...] = CATALOGUE) -> list[str]:
    """``count`` real class-list entries that share no word with the world, from vocabulary ``first``
    in its order, then from the other shipped vocabularies; an entry naming a phrase already taken is
    skipped. ``ValueError`` when the shipped lists hold too few."""
    banned = world_words(catalogue)
    taken: set[str] = set()
    chosen: list[str] = []
    for vocabulary in (first, *(name for name in VOCAB_NAMES if name != first)):
        for entry in vocab_class_names(vocabulary):
            if len(chosen) == count:
                return chosen
            phrases = {part.strip().lower() for part in entry.split(",") if part.strip()}
            if _words(entry) & banned or phrases & taken:
                continue
            chosen.append(entry)
            taken |= phrases
    if len(chosen) < count:
        raise ValueError(f"only {len(chosen)} distractor names in the shipped vocabularies, {count} needed")
    return chosen


def _stratified(members: list[int], count: int, unseen: frozenset[int], rng: np.random.Generator) -> list[int]:
    """``count`` of ``members`` with the unseen ones in proportion (at least one of each kind when possible)."""
    hidden = [m for m in members if m in unseen]
    shown = [m for m in members if m not in unseen]
    n_hidden = round(count * len(hidden) / len(members))
    n_hidden = min(max(n_hidden, 1 if hidden else 0), len(hidden), count)
    n_shown = min(count - n_hidden, len(shown))
    picked = [hidden[i] for i in rng.choice(len(hidden), n_hidden, replace=False)] if n_hidden else []
    picked += [shown[i] for i in rng.choice(len(shown), n_shown, replace=False)] if n_shown else []
    return sorted(picked)


def _benchmark(
    name: str,
    split: str,
    images: int,
    world: list[int],
    size: int,
    catalogue: tuple[ClassSpec, ...],
    things: list[int],
    **scene,
) -> DemoBenchmark:
    """The benchmark whose list holds the catalogue classes ``world`` plus distractors up to ``size``."""
    entries = [(entry_of(catalogue[c]), c) for c in world]
    if size > len(entries):
        first = _REAL_VOCABULARY[name]
        entries += [(entry, -1) for entry in distractor_names(size - len(entries), first, catalogue)]
    entries.sort(key=lambda item: (item[0].lower(), item[0]))
    label_of = [-1] * len(catalogue)
    for position, (_, c) in enumerate(entries):
        if c >= 0:
            label_of[c] = position
    return DemoBenchmark(name, split, images, tuple(e for e, _ in entries), tuple(label_of), tuple(things), **scene)


def demo_benchmark(catalogue: tuple[ClassSpec, ...], config: WorldConfig) -> DemoBenchmark:
    """``demo``: the world's classes in catalogue order (unsorted: its bytes predate the others)."""
    things = [i for i, spec in enumerate(catalogue) if spec.isthing]
    return DemoBenchmark(
        "demo",
        "benchmark",
        config.benchmark_images,
        tuple(entry_of(spec) for spec in catalogue),
        tuple(range(len(catalogue))),
        tuple(things),
    )


def val_benchmark(catalogue: tuple[ClassSpec, ...], config: WorldConfig) -> DemoBenchmark:
    """``val``: ``demo``'s class list and scenes, drawn from the ``val`` split's own streams."""
    return replace(demo_benchmark(catalogue, config), name=VAL_BENCHMARK, split="val", images=config.val_images)


def world_benchmarks(
    names: list[str] | tuple[str, ...],
    config: WorldConfig,
    unseen: frozenset[int],
    catalogue: tuple[ClassSpec, ...] = CATALOGUE,
) -> list[DemoBenchmark]:
    """The benchmarks ``names`` (each of :data:`WORLD_BENCHMARKS`), in that tuple's order."""
    unknown = sorted(set(names) - set(WORLD_BENCHMARKS))
    if unknown:
        raise ValueError(f"the demo world has no benchmark {unknown}; it has {list(WORLD_BENCHMARKS)}")
    every = list(range(len(catalogue)))
    stuff = [i for i in every if not catalogue[i].isthing]
    things = [i for i in every if catalogue[i].isthing]
    out = []
    for name in (n for n in WORLD_BENCHMARKS if n in names):
        images = config.extra_benchmark_images
        if name == "demo":
            out.append(demo_benchmark(catalogue, config))
            continue
        size = len(vocab_class_names(_REAL_VOCABULARY[name]))
        rng = rng_for(config.seed, STREAM_VOCAB, name)
        if name in ("ade847", "pc459"):
            out.append(_benchmark(name, name, images, every, size, catalogue, things))
        elif name == "pc59":
            kept = _stratified(things, len(things) - PC59_LEFT_OUT_THINGS, unseen, rng)
            out.append(_benchmark(name, name, images, stuff + kept, size, catalogue, things))
        else:  # voc20: things only, on stuff that is background
            chosen = _stratified(things, size, unseen, rng)
            out.append(
                _benchmark(
                    name,
                    name,
                    images,
                    chosen,
                    size,
                    catalogue,
                    chosen,
                    things_per_image=VOC_THINGS_PER_IMAGE,
                    thing_scale=VOC_THING_SCALE,
                )
            )
    return out
