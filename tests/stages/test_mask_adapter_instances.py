"""The demo world's thing instances reach the Mask-Adapter's training set (one mask per instance)."""

from __future__ import annotations

import torch

from pipeline.datasets.manifest import load_world
from pipeline.training.instances import WithInstances, instance_segments
from pipeline.training.proposer import load_training_set
from stages.mask_adapter import with_instances


def test_the_demo_world_trains_on_its_instances(eval_inputs):
    world = load_world(eval_inputs.manifest)
    lines: list[str] = []
    images = with_instances(load_training_set(world.train_labels()), world, {}, lines.append)
    assert isinstance(images, WithInstances) and not lines
    _, labels, ids = images.batch(range(len(images)))
    assert ids.shape == labels.shape and int(ids.max()) >= 1
    # an instance lies inside its class: each segment of an image is one class's pixels
    for label, image_ids in zip(labels, ids):
        classes, masks = instance_segments(label, image_ids)
        for c, mask in zip(classes.tolist(), masks):
            assert bool(mask.any()) and bool((label[mask] == c).all())
    # segments beyond one per class: a class with several instances (the tiny world, seed 3, has one)
    extra = [len(instance_segments(lab, im)[0]) - len(torch.unique(lab[lab >= 0])) for lab, im in zip(labels, ids)]
    assert min(extra) >= 0 and sum(extra) >= 1
    off = with_instances(load_training_set(world.train_labels()), world, {"instance_masks": False}, lines.append)
    assert not isinstance(off, WithInstances)
