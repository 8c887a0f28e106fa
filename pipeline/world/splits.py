"""zsseg.baseline's zero-shot splits of a real COCO-Stuff world (``data.real.split``).

A split names the classes left *unseen*: their pixels are ignore in the training labels,
and the evaluation reports the benchmarks' seen and unseen classes apart (and their hIoU).

* ``none``: every COCO-Stuff-171 class is seen (the cross-dataset setting).
* ``coco_stuff_156_15``: COCO-Stuff 156 seen / 15 unseen, zsseg's list in COCO-Stuff's names.
* ``voc_15_5``: PASCAL VOC 15 seen / 5 unseen, zsseg's list in VOC's names. The VOC classes
  are carried by COCO-Stuff classes under other names (:data:`VOC_NAMES_IN_COCO`); those
  COCO classes are the unseen ones, and they take the VOC names as synonyms so that the
  evaluation finds VOC's classes among the world's by name. VOC's background is ignore on the
  benchmark (its reader) and has no COCO-Stuff class.
"""

from __future__ import annotations

from pipeline.datasets.vocab import class_names, coco_stuff_categories

#: The unseen classes of each split, as its source names them.
SPLITS: dict[str, tuple[str, ...]] = {
    "none": (),
    "coco_stuff_156_15": (
        "cow",
        "giraffe",
        "suitcase",
        "frisbee",
        "skateboard",
        "carrot",
        "scissors",
        "cardboard",
        "clouds",
        "grass",
        "playingfield",
        "river",
        "road",
        "tree",
        "wall-concrete",
    ),
    "voc_15_5": ("pottedplant", "sheep", "sofa", "train", "tvmonitor"),
}
#: VOC class names that COCO-Stuff spells differently → the COCO-Stuff class carrying them (the other 14 VOC
#: names are COCO-Stuff names too: bicycle, bird, boat, bottle, bus, car, cat, chair, cow, dog, horse, person,
#: sheep, train).
VOC_NAMES_IN_COCO: dict[str, str] = {
    "aeroplane": "airplane",
    "diningtable": "dining table",
    "motorbike": "motorcycle",
    "pottedplant": "potted plant",
    "sofa": "couch",
    "tvmonitor": "tv",
}


def coco_name(voc_name: str) -> str:
    """The COCO-Stuff class that carries VOC's ``voc_name``."""
    return VOC_NAMES_IN_COCO.get(voc_name, voc_name)


def unseen_coco_names(split: str) -> list[str]:
    """The COCO-Stuff names of ``split``'s unseen classes, sorted; ``ValueError`` for an unknown split or a
    name that is no COCO-Stuff-171 (or VOC) class."""
    if split not in SPLITS:
        raise ValueError(f"data.real.split: unknown split {split!r}; choose from {', '.join(SPLITS)}")
    names = SPLITS[split]
    if split == "voc_15_5":
        not_voc = sorted(set(names) - set(class_names("voc20")))
        if not_voc:
            raise ValueError(f"split {split}: {not_voc} are not VOC class names")
        names = tuple(coco_name(name) for name in names)
    coco = {entry["name"] for entry in coco_stuff_categories()}
    unknown = sorted(set(names) - coco)
    if unknown:
        raise ValueError(f"split {split}: {unknown} are not COCO-Stuff-171 class names")
    return sorted(names)


def voc_synonyms() -> dict[str, list[str]]:
    """COCO-Stuff name → the VOC names it carries under another spelling (checked against both vocabularies)."""
    voc = set(class_names("voc20"))
    coco = {entry["name"] for entry in coco_stuff_categories()}
    bad = sorted(f"{v} -> {c}" for v, c in VOC_NAMES_IN_COCO.items() if v not in voc or c not in coco)
    if bad:
        raise ValueError(f"VOC_NAMES_IN_COCO: {bad} name no VOC or no COCO-Stuff class")
    return {c: [v] for v, c in sorted(VOC_NAMES_IN_COCO.items())}
