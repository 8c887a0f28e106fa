"""zsseg's zero-shot splits: the unseen names, their COCO-Stuff classes, and VOC's seen/unseen classes."""

from __future__ import annotations

import pytest

from pipeline.datasets.vocab import class_names
from pipeline.evaluation.miou import class_is_seen
from pipeline.world import splits
from pipeline.world.real import coco_classes

COCO_15 = splits.SPLITS["coco_stuff_156_15"]


def test_unseen_names_are_coco_stuff_classes():
    assert splits.unseen_coco_names("none") == []
    assert splits.unseen_coco_names("coco_stuff_156_15") == sorted(COCO_15) and len(set(COCO_15)) == 15
    assert splits.unseen_coco_names("voc_15_5") == ["couch", "potted plant", "sheep", "train", "tv"]
    with pytest.raises(ValueError, match=r"unknown split 'coco_20_5'; choose from none, coco_stuff_156_15, voc_15_5"):
        splits.unseen_coco_names("coco_20_5")


def test_a_name_that_matches_no_class_fails_loudly(monkeypatch):
    monkeypatch.setitem(splits.SPLITS, "coco_stuff_156_15", ("cow", "wall-concret"))
    with pytest.raises(ValueError, match=r"\['wall-concret'\] are not COCO-Stuff-171 class names"):
        splits.unseen_coco_names("coco_stuff_156_15")
    monkeypatch.setitem(splits.SPLITS, "voc_15_5", ("pottedplant", "tv"))
    with pytest.raises(ValueError, match=r"\['tv'\] are not VOC class names"):
        splits.unseen_coco_names("voc_15_5")


@pytest.mark.parametrize(
    "split, unseen",
    [("none", []), ("coco_stuff_156_15", COCO_15), ("voc_15_5", ["potted plant", "sheep", "couch", "train", "tv"])],
)
def test_classes_json_marks_exactly_the_splits_unseen_classes(split, unseen):
    classes = coco_classes(split)
    assert len(classes) == 171
    assert sorted(c["name"] for c in classes if not c["seen"]) == sorted(unseen)


def test_voc_sees_its_15_and_misses_its_5_by_name():
    voc = class_names("voc20")
    unseen = [name for name, seen in zip(voc, class_is_seen(voc, coco_classes("voc_15_5"))) if not seen]
    assert unseen == ["pottedplant", "sheep", "sofa", "train", "tvmonitor"]
    # Without a split every VOC class is seen, aeroplane, diningtable, motorbike ... included (COCO's synonyms).
    assert class_is_seen(voc, coco_classes("none")).all()
