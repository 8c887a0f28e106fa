"""Per-instance ground truth for the Mask-Adapter: instance-id maps from COCO instances, segments cut by them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from core.rle import encode_rle
from pipeline.training.instances import InstanceMaps, WithInstances, instance_segments, world_instances
from pipeline.training.proposer import TrainingSet


def box(size: int, rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[rows, cols] = True
    return mask


def coco() -> dict:
    """Image a.png: two cars (thing, id 7), a road band (stuff, id 3) and a cow (thing, unseen id 9)."""
    annotations = [
        (7, box(8, slice(0, 2), slice(0, 3))),
        (7, box(8, slice(0, 2), slice(5, 8))),
        (3, box(8, slice(4, 8), slice(0, 8))),
        (9, box(8, slice(2, 4), slice(0, 2))),
    ]
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
        "annotations": [
            {"id": n, "image_id": 1, "category_id": c, "segmentation": encode_rle(m), "iscrowd": 0}
            for n, (c, m) in enumerate(annotations, start=1)
        ],
        "categories": [{"id": 3, "isthing": 0}, {"id": 7, "isthing": 1}, {"id": 9, "isthing": 1}],
    }


def label_map() -> np.ndarray:
    """Seen classes: 0 = road (id 3), 1 = car (id 7); the cow is unseen (ignored)."""
    label = np.full((8, 8), -1, dtype=np.int64)
    label[4:] = 0
    label[0:2, 0:3] = 1
    label[0:2, 5:8] = 1
    return label


def test_things_get_one_mask_per_instance_and_stuff_one_per_class():
    maps = InstanceMaps.from_coco(coco(), seen_ids=[3, 7])
    assert [index for index, _ in maps.by_key["a"]] == [1, 1]  # the two cars; stuff and the unseen cow not listed
    ids = maps.id_map("a", (8, 8))
    assert sorted(np.unique(ids).tolist()) == [0, 1, 2]
    classes, masks = instance_segments(torch.from_numpy(label_map()), torch.from_numpy(ids))
    assert classes.tolist() == [0, 1, 1]
    assert masks.sum((1, 2)).tolist() == [32, 6, 6]
    assert torch.equal(masks[1], torch.from_numpy(box(8, slice(0, 2), slice(0, 3))))
    # without instances: one mask per class, the two cars merged
    plain_classes, plain = instance_segments(torch.from_numpy(label_map()), torch.zeros(8, 8, dtype=torch.long))
    assert plain_classes.tolist() == [0, 1] and plain.sum((1, 2)).tolist() == [32, 12]


def test_the_id_map_is_resized_as_the_labels_are():
    maps = InstanceMaps.from_coco(coco(), seen_ids=[3, 7])
    assert maps.id_map("a", (16, 16))[0:4, 10:16].tolist() == [[2] * 6] * 4
    assert maps.id_map("unknown", (4, 4)).tolist() == [[0] * 4] * 4


def test_batches_carry_their_id_maps_and_the_fingerprint_covers_them():
    images = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    training = TrainingSet(("a",), images, label_map()[None].astype(np.int16))
    with_instances = WithInstances(training, InstanceMaps.from_coco(coco(), seen_ids=[3, 7]))
    _, labels, ids = with_instances.batch([0])
    assert ids.shape == labels.shape == (1, 8, 8) and int(ids.max()) == 2
    other = WithInstances(training, InstanceMaps.from_coco(coco(), seen_ids=[7, 3]))
    assert with_instances.fingerprint() != other.fingerprint() != training.fingerprint()


def test_a_world_without_instances_falls_back_to_one_mask_per_class_and_says_so():
    lines: list[str] = []
    world = SimpleNamespace(truth_paths=None, source="coco")
    assert world_instances(world, lines.append) is None  # type: ignore[arg-type]
    assert len(lines) == 1 and "one mask per class" in lines[0]
