"""The evaluation variants: names, modes, CLIP folders."""

from __future__ import annotations

import pytest

from pipeline.evaluation.variants import ENSEMBLES, Variant, variant, variant_names


def test_names_in_report_order():
    names = variant_names()
    assert names[:15] == [
        "base",
        "mpt",
        "ft",
        "ft_mpt",
        "ft_gt",
        "prompts",
        "ft_prompts",
        "longer",
        "zsseg",
        "maskpool",
        "maskpool_mean",
        "adapter",
        "adapter_ens",
        "ft_adapter_ens",
        "oracle",
    ]
    assert names[15:] == [
        "gt_masks_base",
        "gt_masks_mpt",
        "gt_masks_ft",
        "gt_masks_ft_mpt",
        "gt_masks_ft_gt",
        "gt_masks_prompts",
        "gt_masks_ft_prompts",
        "gt_masks_longer",
        "gt_masks_maskpool",
        "gt_masks_maskpool_mean",
        "gt_masks_adapter",
        "gt_masks_ft_adapter",
    ]
    assert [variant(name).name for name in names] == names


def test_maskpool_mean_is_the_papers_baseline_pooling_and_maskpool_reads_the_params():
    for name in ("maskpool_mean", "gt_masks_maskpool_mean"):
        spec = variant(name)
        assert (spec.classifier, spec.clip_name, spec.adapter, spec.ensemble, spec.pooling) == (
            "maskpool",
            "base",
            None,
            "mask_adapter",
            "mean",
        )
    assert variant("maskpool").pooling is None and variant("gt_masks_maskpool").pooling is None
    assert variant("maskpool_mean").mode == "two_stage" and variant("gt_masks_maskpool_mean").mode == "gt_masks"


def test_modes_and_clips():
    assert (variant("ft_mpt").mode, variant("ft_mpt").clip_name) == ("two_stage", "ft_mpt")
    assert not variant("ft_mpt").is_diagnostic and variant("ft_mpt").needs_proposer
    oracle = variant("oracle")
    assert (oracle.mode, oracle.clip_name, oracle.is_diagnostic, oracle.needs_proposer) == (
        "oracle",
        "base",
        True,
        True,
    )
    gt = variant("gt_masks_ft_mpt")
    assert (gt.mode, gt.clip_name, gt.needs_proposer) == ("gt_masks", "ft_mpt", False)
    assert "ft_mpt CLIP" in gt.description
    control = variant("longer")  # the equal-compute control: artifacts/clip_longer on the crop path
    assert (control.mode, control.clip_name, control.classifier) == ("two_stage", "longer", "crops")


def test_the_one_pass_family_names_its_clip_adapter_and_ensemble():
    assert (variant("base").classifier, variant("base").adapter) == ("crops", None)
    maskpool = variant("maskpool")
    assert (maskpool.classifier, maskpool.clip_name, maskpool.adapter, maskpool.ensemble) == (
        "maskpool",
        "base",
        None,
        "mask_adapter",
    )
    alone = variant("adapter")
    assert (alone.classifier, alone.clip_name, alone.adapter, alone.ensemble) == ("adapter", "base", "base", "none")
    ft = variant("ft_adapter_ens")
    assert (ft.mode, ft.clip_name, ft.adapter, ft.ensemble) == ("two_stage", "ft", "ft", "mask_adapter")
    gt = variant("gt_masks_ft_adapter")
    assert (gt.mode, gt.classifier, gt.clip_name, gt.adapter, gt.needs_proposer) == (
        "gt_masks",
        "adapter",
        "ft",
        "ft",
        False,
    )
    assert variant("gt_masks_maskpool").classifier == "maskpool"


def test_a_variant_ensembles_only_as_its_classifier_can():
    assert all(variant(name).ensemble in ENSEMBLES[variant(name).classifier] for name in variant_names())
    with pytest.raises(
        ValueError, match="variant 'x': ensemble 'zsseg'; the adapter classifier takes mask_adapter, none"
    ):
        Variant("x", "two_stage", "base", "", "adapter", "base", "zsseg")
    with pytest.raises(ValueError, match="the maskpool classifier takes"):
        Variant("x", "two_stage", "base", "", "maskpool")  # the default, ovseg, is the crops' ensemble


def test_zsseg_is_the_prompted_base_clip_with_its_own_ensemble():
    zsseg = variant("zsseg")
    assert (zsseg.mode, zsseg.classifier, zsseg.clip_name, zsseg.ensemble) == ("two_stage", "crops", "prompts", "zsseg")
    ft_prompts = variant("ft_prompts")
    assert (ft_prompts.clip_name, ft_prompts.ensemble) == ("ft_prompts", "ovseg")
    assert variant("base").ensemble == "ovseg"


@pytest.mark.parametrize("name", ["gt_masks", "gt_masks_", "gt_masks_large", "finetuned", ""])
def test_unknown_names_list_the_valid_ones(name):
    with pytest.raises(ValueError, match="unknown variant .* choose from base, mpt"):
        variant(name)
