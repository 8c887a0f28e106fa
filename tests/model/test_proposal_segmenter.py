"""The base of both segmenters: each brings its own parameters, none borrows the other's."""

import pytest

from model.one_pass import OnePassSegmenter
from model.proposal_segmenter import ProposalSegmenter
from model.two_stage import TwoStageSegmenter


def test_each_segmenter_holds_only_its_own_parameters(tiny_clip):
    one_pass = OnePassSegmenter(None, tiny_clip, alpha=0.3, beta=0.6, mask_threshold=0.5)
    two_stage = TwoStageSegmenter(None, tiny_clip, lam=0.6, mask_threshold=0.5)
    assert isinstance(one_pass, ProposalSegmenter) and isinstance(two_stage, ProposalSegmenter)
    assert not isinstance(one_pass, TwoStageSegmenter)
    assert one_pass.mask_threshold == two_stage.mask_threshold == 0.5
    assert (one_pass.alpha, one_pass.beta, two_stage.lam) == (0.3, 0.6, 0.6)
    assert not hasattr(one_pass, "lam") and not hasattr(two_stage, "beta")


@pytest.mark.parametrize(
    "make",
    [
        lambda clip: OnePassSegmenter(None, clip, mask_threshold=1.0),
        lambda clip: TwoStageSegmenter(None, clip, mask_threshold=-0.1),
    ],
)
def test_the_shared_parameters_are_checked_once_for_both(tiny_clip, make):
    with pytest.raises(ValueError, match=r"mask_threshold must lie in \[0, 1\)"):
        make(tiny_clip)


def test_the_base_alone_cannot_classify(tiny_clip):
    with pytest.raises(NotImplementedError):
        ProposalSegmenter(None, tiny_clip).clip_probs([], [], None)
