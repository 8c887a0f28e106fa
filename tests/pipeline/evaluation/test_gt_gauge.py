import numpy as np
import pytest
import torch

from model.clip import build_clip
from model.precision import inference_autocast
from pipeline.datasets.segmentation import Sample
from pipeline.evaluation.gt_gauge import class_subsets, crop_accuracy, segmented_samples, top1
from tests.doubles import MemoryDataset

# Low-precision runs: bf16 asked for explicitly, or auto resolved on a bf16 CPU.
pytestmark = pytest.mark.usefixtures("native_numerics")

WORLD = [
    {"id": 1, "name": "sky", "synonyms": [], "isthing": 0, "seen": 1},
    {"id": 2, "name": "ring", "synonyms": ["hoop"], "isthing": 1, "seen": 0},
    {"id": 3, "name": "lemon", "synonyms": [], "isthing": 1, "seen": 1},
]


def test_subsets_match_names_and_synonyms():
    subsets = class_subsets(["sky", "hoop, ring", "lemon"], WORLD)
    assert subsets["seen"].tolist() == [True, False, True]
    assert subsets["unseen"].tolist() == [False, True, False]
    assert subsets["things"].tolist() == [False, True, True]
    assert subsets["stuff"].tolist() == [True, False, False]


def test_subsets_without_kinds_for_unknown_classes():
    subsets = class_subsets(["sky", "volcano"], WORLD)
    assert subsets["seen"].tolist() == [True, False] and "things" not in subsets
    assert class_subsets(["sky"], None) == {}


CLASS_NAMES = ["sky", "hoop, ring", "lemon"]


def tiny_benchmark() -> MemoryDataset:
    label = np.full((32, 32), -1, np.int32)
    label[:16] = 0
    label[16:, :16] = 1
    label[16:, 16:] = 2
    other = np.zeros((32, 32), np.int32)
    rng = np.random.default_rng(0)
    return MemoryDataset(
        "tiny",
        CLASS_NAMES,
        [
            Sample("a", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), label),
            Sample("b", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), other),
        ],
    )


def test_segmented_samples_skip_images_without_a_segment_and_stop_at_the_limit():
    tiny = tiny_benchmark()
    blank = Sample("0", np.zeros((32, 32, 3), np.uint8), np.full((32, 32), -1, np.int32))  # sorts first
    dataset = MemoryDataset("tiny", CLASS_NAMES, [blank, *map(tiny.load, tiny.keys())])
    found = [
        (sample.key, classes.tolist(), int(masks.sum()))
        for sample, classes, masks in segmented_samples(dataset, None, desc="t")
    ]
    assert found == [("a", [0, 1, 2], 1024), ("b", [0], 1024)]
    assert [sample.key for sample, _, _ in segmented_samples(dataset, 2, desc="t")] == ["a"]


def test_accuracy_is_the_mean_of_per_class_accuracies():
    bundle = build_clip("ovseg-tiny-vit", device="cpu", seed=0, image_size=32)
    result = crop_accuracy(bundle, tiny_benchmark(), subsets=class_subsets(CLASS_NAMES, WORLD), batch_size=2)
    assert result["segments"] == 4 and result["classes_present"] == 3
    values = list(result["per_class"].values())
    assert set(result["per_class"]) == {"sky", "hoop", "lemon"}
    assert all(v in (0.0, 50.0, 100.0) for v in values)
    assert result["mean"] == pytest.approx(np.mean(values), abs=0.01)
    assert result["chance"] == pytest.approx(33.33)
    assert result["unseen"] == result["per_class"]["hoop"]


def test_top1_scores_in_float32_under_a_bf16_autocast():
    text = torch.tensor([[1.0, 0.0], [0.8, 0.6]])  # 36.87 degrees apart: a tie at 18.43
    angles = torch.deg2rad(torch.tensor([18.47, 18.40]))  # cosines ~2e-4 apart, below bf16's step at 0.95
    embeddings = torch.stack([angles.cos(), angles.sin()], dim=1)
    expected = top1(embeddings, text)
    assert expected.tolist() == [1, 0]
    with inference_autocast("bf16", "cpu"):
        assert torch.equal(top1(embeddings, text), expected)
        assert (embeddings @ text.T).argmax(dim=1).tolist() != [1, 0]  # what an unguarded matmul would pick
