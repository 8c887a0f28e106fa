"""The demo's segmenters: loaded once from the artifacts, one answer per variant, the same labels as segment()."""

from __future__ import annotations

import numpy as np
import pytest

from core import paths
from pipeline.datasets.manifest import load_world
from pipeline.demo.models import DEFAULT_VARIANTS, DemoModels
from pipeline.demo.why import eroded, explain
from pipeline.evaluation.label_overlay import LEGEND_WIDTH, legend_height
from pipeline.evaluation.miou import resize_label, resize_short_side

NAMES = ["sky", "grass, lawn", "zebra", "water, sea"]


@pytest.fixture(scope="module")
def models(demo_root):
    world = load_world(demo_root / paths.WORLD_MANIFEST)
    return DemoModels.load(demo_root / paths.ARTIFACTS, world_classes=world.classes)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(1).integers(0, 256, (48, 72, 3), dtype=np.uint8)


def test_every_default_variant_answers_at_the_image_size(models, image):
    assert models.variants == list(DEFAULT_VARIANTS)
    results = models.segment(image, NAMES, list(reversed(DEFAULT_VARIANTS)))
    assert [r.variant for r in results] == list(DEFAULT_VARIANTS)  # page order, whatever the order asked
    for result in results:
        assert result.labels.shape == (48, 72) and result.labels.dtype == np.int32
        assert result.picture.size == (72 + LEGEND_WIDTH, max(48, legend_height(len(NAMES))))
        assert set(result.shares) == {"sky", "grass", "zebra", "water"}
        assert round(sum(result.shares.values()) + result.unlabelled, 2) == 100.0
        assert result.why is None and result.why_picture is None and result.seconds > 0
    again = models.segment(image, NAMES, ["adapter_ens"])[0]
    assert np.array_equal(again.labels, results[2].labels)  # deterministic


def test_labels_are_the_segmenters_own_with_the_worlds_seen_split(models, image):
    seen = models.seen(NAMES)
    assert seen is not None and seen.dtype == bool and len(seen) == len(NAMES)
    for name in ("base", "adapter_ens"):
        expected = models.segmenters[name].segment(image, NAMES, seen=seen)
        assert np.array_equal(models.segment(image, NAMES, [name])[0].labels, expected)


@pytest.mark.parametrize("name", DEFAULT_VARIANTS)
def test_why_explains_the_same_labels(models, image, name):
    segmenter = models.segmenters[name]
    seen = models.seen(NAMES)
    explanation = explain(segmenter, image, NAMES, seen, min_share=0.0, max_proposals=50)
    assert np.array_equal(explanation.labels, segmenter.segment(image, NAMES, seen=seen))
    decided = [view.decided for view in explanation.proposals]
    assert decided == sorted(decided, reverse=True)
    assert abs(sum(decided) - (explanation.labels >= 0).mean()) < 1e-3  # every labelled pixel has one decider
    for view in explanation.proposals:
        assert view.mask.shape == (48, 72) and len(view.proposer) == len(view.clip) == 3
        assert view.winner == view.ensemble[0][0] and 0 <= view.objectness <= 1
    result = models.segment(image, NAMES, [name], why=True)[0]
    assert result.why_picture.size == result.picture.size
    assert len(result.why.proposals) <= 8 and all(view.decided >= 0.01 for view in result.why.proposals)


def test_short_side_segments_smaller_and_answers_at_the_image_size(models, image):
    result = models.segment(image, NAMES, ["base"], why=True, short_side=24)[0]
    assert result.labels.shape == (48, 72) and result.picture.size[0] == 72 + LEGEND_WIDTH
    small = models.segmenters["base"].segment(resize_short_side(image, 24), NAMES, seen=models.seen(NAMES))
    assert small.shape == (24, 36)
    assert np.array_equal(result.labels, resize_label(small, (48, 72)))
    assert all(view.mask.shape == (48, 72) for view in result.why.proposals)


def test_outlines_are_drawn_inside_each_mask():
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    assert eroded(mask).sum() == 4 and eroded(mask)[2:4, 2:4].all()


def test_bad_requests_and_folders_are_named(models, image, demo_root, tmp_path):
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        models.segment(image, NAMES, ["nope"])
    with pytest.raises(ValueError, match="choose at least one variant"):
        models.segment(image, NAMES, [])
    with pytest.raises(FileNotFoundError, match="clip_ft: CLIP folder of variant 'ft_adapter_ens' not found"):
        DemoModels.load(demo_root / paths.ARTIFACTS, variants=["ft_adapter_ens"])
    with pytest.raises(FileNotFoundError, match="proposer folder not found"):
        DemoModels.load(tmp_path)
    with pytest.raises(ValueError, match="oracle cannot be shown"):
        DemoModels.load(demo_root / paths.ARTIFACTS, variants=["oracle"])


def test_an_extra_clip_folder_is_a_crops_variant(demo_root, image):
    models = DemoModels.load(demo_root / paths.ARTIFACTS, variants=["base"], clips=[demo_root / paths.CLIP_FT_MPT])
    assert models.variants == ["base", "crops:clip_ft_mpt"]
    results = models.segment(image, NAMES, ["crops:clip_ft_mpt"])
    assert results[0].labels.shape == (48, 72)
