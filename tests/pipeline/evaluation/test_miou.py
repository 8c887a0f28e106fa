"""The evaluation loop and its record, on an in-memory dataset with tiny random models."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyarrow as pa
import pytest
import torch

from core.classnames import display_names
from model.clip import build_clip
from model.metrics import ConfusionMatrix
from model.one_pass import OnePassSegmenter
from model.oracle import gt_segments
from model.proposer import build_proposer, load_proposer_config
from model.two_stage import TwoStageSegmenter
from pipeline.datasets.proposal_table import PROPOSALS, proposal_rows, write_table
from pipeline.datasets.segmentation import Sample
from pipeline.evaluation.external_proposals import read_proposals
from pipeline.evaluation.miou import (
    FIGURES,
    EvalConfig,
    EvaluationRun,
    class_is_seen,
    class_is_unseen,
    evaluate_benchmark,
    example_keys,
    metrics_record,
    resize_short_side,
)
from pipeline.evaluation.tuning import ensemble_sweep
from pipeline.evaluation.variants import variant
from tests.doubles import MemoryDataset

# Low-precision runs: bf16 asked for explicitly, or auto resolved on a bf16 CPU.
pytestmark = pytest.mark.usefixtures("native_numerics")

NAMES = ["sky", "grass, lawn", "zebra"]


@pytest.fixture(scope="module")
def dataset() -> MemoryDataset:
    rng = np.random.default_rng(0)
    samples = []
    for i, (h, w) in enumerate([(40, 48), (40, 48), (36, 52), (40, 48), (40, 48)]):
        label = np.zeros((h, w), np.int32)
        label[h // 2 :] = 1
        label[5:15, 10:25] = 2
        label[:, :2] = -1
        samples.append(Sample(f"img{i}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8), label))
    return MemoryDataset("memory", NAMES, samples)


@pytest.fixture(scope="module")
def segmenter() -> TwoStageSegmenter:
    clip = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    config = dataclasses.replace(load_proposer_config("proposer-tiny"), text_dim=clip.embed_dim)
    torch.manual_seed(0)
    return TwoStageSegmenter(build_proposer(config), clip, clip_batch_size=32)


def scored_pixels(dataset: MemoryDataset, limit: int | None = None) -> int:
    keys = dataset.keys()[:limit]
    return sum(int((dataset.load(k).label >= 0).sum()) for k in keys)


@pytest.mark.parametrize("mode_variant", ["base", "oracle", "gt_masks_base"])
def test_every_scored_pixel_is_counted_once(dataset, segmenter, mode_variant):
    settings = EvalConfig(batch_size=2, overlay_images=2)
    run = evaluate_benchmark(segmenter, dataset, variant(mode_variant), settings, np.array([True, True, False]))
    assert run.images == 5 and run.confusion.total == scored_pixels(dataset)
    assert [e.key for e in run.examples] == ["img0", "img4"]
    assert all(e.prediction.shape == e.label.shape for e in run.examples)


def test_ground_truth_segments_are_painted_whole(dataset, segmenter):
    run = evaluate_benchmark(segmenter, dataset, variant("gt_masks_base"), EvalConfig(overlay_images=5), None)
    for example in run.examples:
        for c in range(len(NAMES)):  # each ground-truth segment gets a single predicted class
            assert len(np.unique(example.prediction[example.label == c])) == 1
        assert (example.prediction[example.label < 0] == -1).all()


def test_batch_size_does_not_change_the_counts(dataset, segmenter):
    one = evaluate_benchmark(segmenter, dataset, variant("base"), EvalConfig(batch_size=1), None)
    many = evaluate_benchmark(segmenter, dataset, variant("base"), EvalConfig(batch_size=4), None)
    assert one.confusion == many.confusion


def test_short_side_and_max_images(dataset, segmenter):
    settings = EvalConfig(short_side=24, max_images=3, overlay_images=1)
    run = evaluate_benchmark(segmenter, dataset, variant("oracle"), settings, None)
    assert run.images == 3 and run.confusion.total == scored_pixels(dataset, 3)
    assert run.examples[0].prediction.shape == (40, 48)


def test_settings_validate_and_refuse_unknown_keys():
    assert EvalConfig.from_params({"lam": 0.5, "device": "cpu"}).lam == 0.5
    with pytest.raises(ValueError, match=r"unknown keys \['lamda'\]"):
        EvalConfig.from_params({"lamda": 0.5})
    for bad, message in [
        ({"lam_unseen": 2.0}, "lam_unseen must lie"),
        ({"mask_threshold": 1.0}, "mask_threshold"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"short_side": 0}, "short_side"),
        ({"expand_ratio": -0.1}, "expand_ratio"),
    ]:
        with pytest.raises(ValueError, match=message):
            EvalConfig.from_params(bad)


def test_example_keys_are_spread_evenly():
    keys = [f"k{i}" for i in range(10)]
    assert example_keys(keys, 4) == ["k0", "k3", "k6", "k9"]
    assert example_keys(keys, 1) == ["k0"]
    assert example_keys(keys[:2], 4) == ["k0", "k1"]
    assert example_keys(keys, 0) == [] and example_keys([], 3) == []


def test_resize_short_side():
    image = np.zeros((30, 60, 3), np.uint8)
    assert resize_short_side(image, 15).shape == (15, 30, 3)
    assert resize_short_side(image, None) is image and resize_short_side(image, 30) is image


def test_class_is_seen_matches_names_and_synonyms():
    world = [
        {"name": "lawn", "synonyms": [], "seen": 1, "isthing": 0},
        {"name": "sky", "synonyms": ["heaven"], "seen": 0, "isthing": 0},
    ]
    assert class_is_seen(NAMES, world).tolist() == [False, True, False]
    assert class_is_seen(NAMES, None) is None


def test_class_is_unseen_leaves_distractors_out_in_a_closed_world_only():
    world = [
        {"name": "lawn", "synonyms": [], "seen": 1, "isthing": 0},
        {"name": "sky", "synonyms": ["heaven"], "seen": 0, "isthing": 0},
    ]
    names = ["heaven", "grass, lawn", "volcano"]
    assert class_is_unseen(names, world, closed=True).tolist() == [True, False, False]  # volcano: a distractor
    assert class_is_unseen(names, world, closed=False).tolist() == [True, False, True]  # real data: unseen
    assert class_is_unseen(names, None, closed=True) is None


def test_metrics_record_counts_classes_outside_the_world():
    confusion = ConfusionMatrix(3)
    confusion.update(np.array([0, 1, 2]), np.array([0, 1, 1]))
    record = metrics_record(
        EvaluationRun(confusion, images=1),
        NAMES,
        np.array([True, False, False]),
        variant=variant("base"),
        benchmark="memory",
        settings=EvalConfig(),
        unseen=np.array([False, True, False]),
    )
    assert (record["classes_seen"], record["classes_unseen"], record["classes_outside_world"]) == (1, 1, 1)
    assert record["mIoU_unseen"] == 50.0 and record["mIoU"] == 50.0


def test_display_names_stay_unique():
    assert display_names(["sky", "grass, lawn"]) == ["sky", "grass"]
    assert display_names(["bank, shore", "bank, money", "sky"]) == ["bank #0", "bank #1", "sky"]


def test_metrics_record_rounds_and_turns_nan_into_null():
    confusion = ConfusionMatrix(3)
    confusion.update(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 0]))  # class 2 never appears
    run = EvaluationRun(confusion, images=1)
    record = metrics_record(
        run, NAMES, np.array([True, False, False]), variant=variant("base"), benchmark="memory", settings=EvalConfig()
    )
    assert set(FIGURES) <= set(record)
    assert record["per_class"] == {"sky": 66.67, "grass": 50.0, "zebra": None}
    assert record["mIoU"] == 58.33 and record["mIoU_seen"] == 66.67 and record["mIoU_unseen"] == 50.0
    assert record["hIoU"] == round(2 * 66.6667 * 50 / 116.6667, 2)
    counts = ("classes", "classes_seen", "classes_unseen", "classes_scored")
    assert [record[key] for key in counts] == [3, 1, 2, 2]
    assert record["settings"]["mask_threshold"] == 0.4
    empty = metrics_record(
        EvaluationRun(ConfusionMatrix(3), 0),
        NAMES,
        None,
        variant=variant("oracle"),
        benchmark="memory",
        settings=EvalConfig(),
    )
    assert empty["mIoU"] is None and empty["mIoU_seen"] is None and empty["classes_seen"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in empty.values())


def ground_truth_file(dataset: MemoryDataset, path, keys=None):
    """A stand-in generator: each image's ground-truth segments as ``ovseg propose`` rows (``<key>.png``, score 1)."""
    rows = []
    for key in dataset.keys() if keys is None else keys:
        _, masks = gt_segments(dataset.load(key).label)
        rows += proposal_rows(f"{key}.png", masks, torch.ones(len(masks)), torch.ones(len(masks), 1), ["object"])
    write_table(pa.Table.from_pylist(rows, schema=PROPOSALS), path)
    proposals = read_proposals(path, path.parent)
    return lambda key: proposals.masks(f"{key}.png")


@pytest.mark.parametrize("batch_size", [1, 2])
def test_ground_truth_proposals_give_the_figures_of_the_ground_truth_diagnostic(
    dataset, segmenter, tmp_path, batch_size
):
    """Disjoint masks scored 1 are each painted with CLIP's top class: exactly what ``gt_masks_base`` does."""
    settings = EvalConfig(batch_size=batch_size, overlay_images=5)
    lookup = ground_truth_file(dataset, tmp_path / "gt.parquet")
    external = evaluate_benchmark(segmenter, dataset, variant("base"), settings, None, lookup)
    diagnostic = evaluate_benchmark(segmenter, dataset, variant("gt_masks_base"), settings, None)
    assert external.confusion == diagnostic.confusion and external.images == diagnostic.images == 5
    assert external.images_without_proposals == 0
    for ours, theirs in zip(external.examples, diagnostic.examples):
        assert np.array_equal(ours.prediction, theirs.prediction)
    figures = [
        metrics_record(run, NAMES, None, variant=variant("base"), benchmark="memory", settings=settings)
        for run in (external, diagnostic)
    ]
    assert {k: figures[0][k] for k in FIGURES} == {k: figures[1][k] for k in FIGURES}


def test_images_without_proposals_are_unlabelled_and_counted(dataset, tmp_path):
    clip_only = OnePassSegmenter(None, build_clip("ovseg-tiny-vit", device="cpu", seed=0))
    lookup = ground_truth_file(dataset, tmp_path / "some.parquet", keys=["img1", "img3"])
    run = evaluate_benchmark(
        clip_only, dataset, variant("maskpool"), EvalConfig(overlay_images=5, short_side=24), None, lookup
    )
    assert run.images == 5 and run.images_without_proposals == 3
    assert run.confusion.total == scored_pixels(dataset)  # unlabelled images still count, as misses
    for example in run.examples:
        labelled = example.prediction >= 0
        assert labelled.any() == (example.key in ("img1", "img3"))


def test_external_proposals_go_with_two_stage_variants_only(dataset, segmenter, tmp_path):
    lookup = ground_truth_file(dataset, tmp_path / "gt.parquet")
    for name in ("oracle", "gt_masks_base"):
        with pytest.raises(ValueError, match=f"variant '{name}' .* does not classify proposals"):
            evaluate_benchmark(segmenter, dataset, variant(name), EvalConfig(), None, lookup)
    wrong_size = {"img0": (torch.ones(1, 10, 10, dtype=torch.bool), torch.ones(1))}.get
    with pytest.raises(ValueError, match="the proposals of image 'img0' are 10×10, the image is 40×48"):
        evaluate_benchmark(segmenter, dataset, variant("base"), EvalConfig(), None, wrong_size)


def test_precision_and_max_proposals_are_checked_by_name():
    settings = EvalConfig.from_params({"precision": "bf16", "max_proposals": 8})
    assert settings.precision == "bf16" and settings.max_proposals == 8
    assert EvalConfig().precision == "fp32" and EvalConfig().max_proposals is None
    assert settings.provenance()["precision"] == "bf16" and settings.one_pass_provenance()["max_proposals"] == 8
    with pytest.raises(ValueError, match=r"evaluate.precision must be one of fp32, bf16, auto, got 'fp16'"):
        EvalConfig.from_params({"precision": "fp16"})
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=r"evaluate.max_proposals must be null or an integer >= 1"):
            EvalConfig.from_params({"max_proposals": bad})


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_resolved_on_the_device_and_recorded_so(monkeypatch, native):
    monkeypatch.setattr("model.precision.native_bf16", lambda device: native)
    settings = EvalConfig.from_params({"precision": "auto"})
    assert settings.precision == "auto"
    resolved = settings.resolved("cpu")
    assert resolved.precision == ("bf16" if native else "fp32") == resolved.provenance()["precision"]
    assert EvalConfig(precision="fp32").resolved("cpu").precision == "fp32"


def test_bf16_runs_every_model_call_under_autocast(dataset, segmenter, monkeypatch):
    seen_autocast = []
    encode_image = segmenter.clip.encode_image

    def spy(*args, **kwargs):
        seen_autocast.append(torch.is_autocast_enabled("cpu"))
        return encode_image(*args, **kwargs)

    monkeypatch.setattr(segmenter.clip, "encode_image", spy)
    fp32 = evaluate_benchmark(segmenter, dataset, variant("base"), EvalConfig(batch_size=2), None)
    assert seen_autocast and not any(seen_autocast)
    seen_autocast.clear()
    bf16 = evaluate_benchmark(segmenter, dataset, variant("base"), EvalConfig(batch_size=2, precision="bf16"), None)
    assert seen_autocast and all(seen_autocast)
    assert not torch.is_autocast_enabled("cpu")
    assert bf16.images == fp32.images == 5 and bf16.confusion.total == fp32.confusion.total == scored_pixels(dataset)


def test_max_proposals_null_changes_nothing(dataset, segmenter):
    default = evaluate_benchmark(segmenter, dataset, variant("base"), EvalConfig(), None)
    uncapped = TwoStageSegmenter(segmenter.proposer, segmenter.clip, clip_batch_size=32, max_proposals=None)
    assert evaluate_benchmark(uncapped, dataset, variant("base"), EvalConfig(), None).confusion == default.confusion
    capped = TwoStageSegmenter(segmenter.proposer, segmenter.clip, clip_batch_size=32, max_proposals=2)
    crops_per_call = []
    encode = capped._encode_crops
    capped._encode_crops = lambda crops, masks: crops_per_call.append(len(crops)) or encode(crops, masks)
    run = evaluate_benchmark(capped, dataset, variant("base"), EvalConfig(batch_size=1), None)
    assert run.confusion.total == default.confusion.total
    assert crops_per_call and max(crops_per_call) <= 2  # one image per call, at most 2 proposals classified


def test_an_ensemble_sweep_gives_each_exponents_evaluation_from_one_pass(dataset, segmenter):
    settings = EvalConfig(batch_size=2)
    swept = ensemble_sweep(segmenter, dataset, settings, None, [0.1, 1.0])
    kept = segmenter.lam
    try:
        for lam in (0.1, 1.0):
            segmenter.lam = lam
            run = evaluate_benchmark(segmenter, dataset, variant("base"), settings, None)
            assert swept[lam] == run.confusion.summary(None)["mIoU"]
    finally:
        segmenter.lam = kept
