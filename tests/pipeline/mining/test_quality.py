"""Mining quality against the demo world's truth: precision, non-class share, class recall."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.beam.schemas import NOUNS, PAIRS
from pipeline.mining.quality import TruthLabels, class_lookup, evaluate_mining, normalise_name
from tests.doubles import demo_world, pair_row


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return demo_world(tmp_path_factory.mktemp("quality"), train_images=4)


def nouns_table(words: list[str]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"image_id": 1, "file_name": "000000000001.jpg", "noun": word, "caption_ids": [1], "count": 1}
            for word in words
        ],
        schema=NOUNS,
    )


def test_names_and_lookup():
    assert normalise_name("  Traffic   LIGHT ") == "traffic light"
    lookup = class_lookup(
        [
            {"name": "building, edifice", "synonyms": []},
            {"name": "dalmatian", "synonyms": ["dog"]},
            {"name": "hound", "synonyms": ["Dog"]},
        ]
    )
    assert lookup == {"building": (0,), "dalmatian": (1,), "dog": (1, 2), "edifice": (0,), "hound": (2,)}


def test_precision_non_class_share_and_recall(world):
    names = [c["name"] for c in world.classes]
    truth = TruthLabels(world)
    # The image with the most classes; among them one with a synonym, and two others.
    image_id, label = max(
        ((i, truth.load(f"{i:012d}.jpg")) for i in range(1, 5)), key=lambda item: len(np.unique(item[1]))
    )
    present = [int(i) for i in np.unique(label) if i >= 0]
    synonym_class = next(i for i in present if world.classes[i]["synonyms"])
    first, second = [i for i in present if i != synonym_class][:2]
    absent = next(i for i in range(len(names)) if i not in present)
    never_paired = next(i for i in range(len(names)) if i not in present and i != absent)
    rows = [
        pair_row(image_id, names[first], label == first),  # exact segment: IoU 1
        pair_row(image_id, names[second], label == first),  # another class's segment: wrong
        pair_row(image_id, names[absent], label == first),  # a class absent from the image: IoU 0
        pair_row(image_id, "zzzthing", label == first),  # names no class
        pair_row(image_id, world.classes[synonym_class]["synonyms"][0].upper(), label == synonym_class),  # synonym
    ]
    pairs = pa.Table.from_pylist(rows, schema=PAIRS)
    mentioned = [names[first], names[second], names[absent], "zzzthing", names[never_paired]]
    report = evaluate_mining(pairs, nouns_table(mentioned), world)
    assert report["pairs"] == 5 and report["class_pairs"] == 4
    assert report["non_class_pairs"] == 1 and report["non_class_share"] == 0.2
    assert report["precision"] == 0.5 and report["mean_iou"] == 0.5
    assert report["per_class"][names[first]] == {"pairs": 1, "precision": 1.0, "in_nouns": True}
    assert report["per_class"][names[absent]] == {"pairs": 1, "precision": 0.0, "in_nouns": True}
    assert report["per_class"][names[synonym_class]] == {"pairs": 1, "precision": 1.0, "in_nouns": False}
    # Classes named by caption nouns: first, second, absent, never_paired; the first three have pairs.
    assert report["classes_in_nouns"] == 4 and report["classes_with_pairs"] == 3 and report["class_recall"] == 0.75
    assert report["seen"]["pairs"] + report["unseen"]["pairs"] == 4
    assert report["seen"]["classes_in_nouns"] + report["unseen"]["classes_in_nouns"] == 4


def test_a_pair_of_an_image_without_truth_is_an_error(world, tmp_path: Path):
    pairs = pa.Table.from_pylist([pair_row(999, "grass", np.ones((64, 64), bool))], schema=PAIRS)
    with pytest.raises(FileNotFoundError, match="no truth label"):
        evaluate_mining(pairs, nouns_table(["grass"]), world)
