"""The evaluation variants: names, modes, CLIP folders."""
from __future__ import annotations

import pytest

from pipeline.evaluation.variants import variant, variant_names


def test_names_in_report_order():
    names = variant_names()
    assert names[:6] == ["base", "mpt", "ft", "ft_mpt", "ft_gt", "oracle"]
    assert names[6:] == ["gt_masks_base", "gt_masks_mpt", "gt_masks_ft", "gt_masks_ft_mpt", "gt_masks_ft_gt"]
    assert [variant(name).name for name in names] == names


def test_modes_and_clips():
    assert (variant("ft_mpt").mode, variant("ft_mpt").clip) == ("two_stage", "ft_mpt")
    assert not variant("ft_mpt").is_diagnostic and variant("ft_mpt").needs_proposer
    oracle = variant("oracle")
    assert (oracle.mode, oracle.clip, oracle.is_diagnostic, oracle.needs_proposer) == ("oracle", "base", True, True)
    gt = variant("gt_masks_ft_mpt")
    assert (gt.mode, gt.clip, gt.needs_proposer) == ("gt_masks", "ft_mpt", False)
    assert "ft_mpt CLIP" in gt.description


@pytest.mark.parametrize("name", ["gt_masks", "gt_masks_", "gt_masks_large", "finetuned", ""])
def test_unknown_names_list_the_valid_ones(name):
    with pytest.raises(ValueError, match="unknown variant .* choose from base, mpt"):
        variant(name)
