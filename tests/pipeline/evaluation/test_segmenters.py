"""The one builder of segmenters: each classifier from its folders, with the settings it is given."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model.clip import save_clip_folder
from model.mask_adapter import MaskAdapter, MaskAdapterConfig, save_mask_adapter
from model.one_pass import OnePassSegmenter
from model.proposer import build_proposer, load_proposer_config
from model.two_stage import TwoStageSegmenter
from pipeline.evaluation.miou import EvalConfig
from pipeline.evaluation.segmenters import build_segmenter, build_variant_segmenter, variant_folders, variant_settings
from pipeline.evaluation.variants import variant

CPU = torch.device("cpu")
NAMES = ["sky", "grass, lawn", "zebra"]


@pytest.fixture(scope="module")
def artifacts(tiny_clip, tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    save_clip_folder(tiny_clip, root / "clip_base")
    torch.manual_seed(0)
    adapter = MaskAdapter(MaskAdapterConfig(clip_dim=tiny_clip.embed_dim, num_maps=2, hidden=8, blocks=1))
    save_mask_adapter(adapter, root / "adapter_base", clip_model=tiny_clip.model)
    return root


@pytest.fixture(scope="module")
def proposer(tiny_clip):
    config = dataclasses.replace(load_proposer_config("proposer-tiny"), text_dim=tiny_clip.embed_dim)
    torch.manual_seed(0)
    return build_proposer(config).eval()


def test_each_classifier_gets_its_segmenter_and_settings(artifacts, proposer):
    settings = EvalConfig(
        lam=0.6, alpha=0.2, beta=0.8, mask_threshold=0.3, expand_ratio=0.1, clip_batch_size=7, max_proposals=9
    )
    crops = build_segmenter("crops", proposer, artifacts / "clip_base", settings=settings, device=CPU)
    assert type(crops) is TwoStageSegmenter
    assert (crops.lam, crops.mask_threshold, crops.expand_ratio, crops.clip_batch_size) == (0.6, 0.3, 0.1, 7)
    assert crops.max_proposals == 9
    pooled = build_segmenter("maskpool", proposer, artifacts / "clip_base", settings=settings, device=CPU)
    assert isinstance(pooled, OnePassSegmenter) and pooled.adapter is None
    assert (pooled.alpha, pooled.beta, pooled.mask_threshold, pooled.max_proposals) == (0.2, 0.8, 0.3, 9)
    alone = build_segmenter(
        "adapter",
        proposer,
        artifacts / "clip_base",
        adapter_folder=artifacts / "adapter_base",
        settings=settings,
        ensemble="none",
        device=CPU,
    )
    assert isinstance(alone.adapter, MaskAdapter) and (alone.alpha, alone.beta) == (1.0, 1.0)
    # the adapter's input has its own threshold (default 0.5, the reference's); the crops keep theirs
    assert (alone.mask_threshold, alone.adapter_mask_threshold) == (0.3, 0.5)


def test_a_variant_is_built_as_the_classifier_with_its_folders(artifacts, proposer):
    image = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    by_name = build_variant_segmenter(variant("adapter_ens"), proposer, artifacts, EvalConfig(), CPU)
    direct = build_segmenter(
        "adapter", proposer, artifacts / "clip_base", adapter_folder=artifacts / "adapter_base", device=CPU
    )
    assert np.array_equal(by_name.segment(image, NAMES), direct.segment(image, NAMES))
    assert (by_name.alpha, by_name.beta) == (0.7, 0.9)


def test_maskpool_mean_pools_by_the_weighted_mean_whatever_evaluate_pooling_says(artifacts, proposer):
    settings = EvalConfig(pooling="attention")
    for name in ("maskpool_mean", "gt_masks_maskpool_mean"):
        spec = variant(name)
        segmenter = build_variant_segmenter(spec, proposer, artifacts, settings, CPU)
        assert isinstance(segmenter, OnePassSegmenter) and segmenter.adapter is None
        assert segmenter.dense.pooling == "mean"
        assert variant_settings(spec, settings).one_pass_provenance()["pooling"] == "mean"
    plain = build_variant_segmenter(variant("maskpool"), proposer, artifacts, settings, CPU)
    assert plain.dense.pooling == "attention" and variant_settings(variant("maskpool"), settings) is settings


def test_zsseg_swaps_clips_exponents_for_seen_and_unseen_classes(artifacts, proposer, tiny_clip):
    from model.clip import derive_clip_folder
    from model.text_prompts import TextPrompts

    prompts = TextPrompts.for_clip(tiny_clip.model, 4, generator=torch.Generator().manual_seed(0))
    derive_clip_folder(
        artifacts / "clip_base", artifacts / "clip_prompts", text_prompts=prompts, clip_model=tiny_clip.model
    )
    settings = EvalConfig(lam=0.6, lam_seen=0.1, zsseg_lam=0.75)
    zsseg = build_variant_segmenter(variant("zsseg"), proposer, artifacts, settings, CPU)
    assert zsseg.clip.text_prompts is not None
    assert (zsseg.lam_seen, zsseg.lam_unseen) == pytest.approx((0.25, 0.75))
    ovseg = build_variant_segmenter(variant("prompts"), proposer, artifacts, settings, CPU)
    assert (ovseg.lam, ovseg.lam_seen, ovseg.lam_unseen) == (0.6, 0.1, None)
    with pytest.raises(ValueError, match="ensemble 'zsseg': the maskpool classifier takes mask_adapter, none"):
        build_segmenter("maskpool", proposer, artifacts / "clip_base", ensemble="zsseg", device=CPU)
    with pytest.raises(ValueError, match="evaluate.zsseg_lam must lie in"):
        EvalConfig(zsseg_lam=1.5)


def test_missing_folders_and_mismatched_arguments_are_named(artifacts, proposer, tmp_path):
    with pytest.raises(FileNotFoundError, match="clip_ft_mpt: CLIP folder of variant 'ft_mpt' not found"):
        variant_folders(variant("ft_mpt"), artifacts)
    (tmp_path / "clip_ft").mkdir()
    with pytest.raises(FileNotFoundError, match="adapter_ft: Mask-Adapter folder of variant 'ft_adapter_ens'"):
        variant_folders(variant("ft_adapter_ens"), tmp_path)
    assert variant_folders(variant("maskpool"), artifacts) == (artifacts / "clip_base", None)
    with pytest.raises(ValueError, match="unknown classifier 'pixels'"):
        build_segmenter("pixels", proposer, artifacts / "clip_base", device=CPU)
    with pytest.raises(ValueError, match="a Mask-Adapter folder is needed for 'adapter' and only there"):
        build_segmenter("adapter", proposer, artifacts / "clip_base", device=CPU)


def test_a_clip_with_its_own_text_tower_leaves_the_proposer_the_base_clips_embeddings(artifacts, proposer, tmp_path):
    from model.clip import load_clip_folder
    from model.text import TextClassifier

    for name in ("clip_base", "adapter_base"):
        (tmp_path / name).symlink_to(artifacts / name)
    longer = load_clip_folder(artifacts / "clip_base", CPU)
    with torch.no_grad():
        longer.model.token_embedding.weight.add_(0.5)  # pretraining went on: the text tower moved
    save_clip_folder(longer, tmp_path / "clip_longer")
    segmenter = build_variant_segmenter(variant("longer"), proposer, tmp_path, EvalConfig(), CPU)
    base_text = TextClassifier(load_clip_folder(artifacts / "clip_base", CPU))(NAMES)
    assert not torch.allclose(segmenter.text_embeddings(NAMES), base_text)  # CLIP's side: its own tower
    assert torch.equal(segmenter.proposer_embeddings(NAMES), base_text)  # the proposer's: the base CLIP's
    stored = build_variant_segmenter(variant("longer"), None, tmp_path, EvalConfig(), CPU)  # stored proposals
    assert torch.equal(stored.proposer_embeddings(NAMES), base_text)
    same = build_variant_segmenter(variant("ft"), proposer, _with_ft(tmp_path, artifacts), EvalConfig(), CPU)
    assert same.proposer_text is None  # a locked text tower: nothing to swap


def _with_ft(root, artifacts):
    (root / "clip_ft").symlink_to(artifacts / "clip_base")
    return root
