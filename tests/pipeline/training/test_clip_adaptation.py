"""The mask-adaptation trainer: what it trains, what it locks, and resume equivalence."""

import pytest
import torch

from model.clip import build_clip
from model.mpt import MaskPrompts
from pipeline.training.checkpoint import Checkpointer
from pipeline.training.clip_adaptation import AdaptConfig, adapt_clip
from tests.doubles import killed_after_epoch, mask_pairs


@pytest.fixture
def pairs(tmp_path):
    return mask_pairs(tmp_path, 6)


def tiny_clip():
    return build_clip("ovseg-tiny-vit", device="cpu", seed=0, image_size=32)


def cfg(**kw):
    base = dict(epochs=2, batch_size=8, lr=1e-3, warmup_steps=1, crop_scale=[0.9, 1.0])
    return AdaptConfig.from_params({**base, **kw})


def state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_finetune_trains_the_image_tower_and_locks_the_rest(pairs, tmp_path):
    bundle = tiny_clip()
    before = state(bundle.model)
    log = adapt_clip(bundle, pairs, cfg(mode="image"), checkpoint_dir=tmp_path / "ck", desc="t")
    after = state(bundle.model)
    assert len(log.rows) == 2 * (len(pairs) // 8) == cfg(mode="image").total_steps(len(pairs))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("visual.") for k in changed)
    assert torch.equal(before["logit_scale"], after["logit_scale"])
    assert torch.equal(before["token_embedding.weight"], after["token_embedding.weight"])
    assert [epoch for epoch, _ in Checkpointer(tmp_path / "ck").checkpoints()] == [1]  # of 2: the last is the output


def test_prompt_tuning_changes_only_the_prompts(pairs, tmp_path):
    bundle = tiny_clip()
    before = state(bundle.model)
    adapt_clip(bundle, pairs, cfg(mode="prompts", lr=0.05, mpt_depth=2), checkpoint_dir=tmp_path / "ck", desc="t")
    after = state(bundle.model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert bundle.prompts is not None and bundle.prompts.depth == 2
    initial = MaskPrompts.for_visual(bundle.model.visual, 2, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(initial.prompts, bundle.prompts.prompts.detach())


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["image", "prompts"])
def test_killed_then_resumed_run_ends_with_the_same_weights(pairs, tmp_path, mode):
    config = cfg(mode=mode, epochs=3)
    uninterrupted = tiny_clip()
    adapt_clip(uninterrupted, pairs, config, checkpoint_dir=tmp_path / "a", desc="t")

    with killed_after_epoch(1):
        adapt_clip(tiny_clip(), pairs, config, checkpoint_dir=tmp_path / "b", desc="t")
    resumed = tiny_clip()
    log = adapt_clip(resumed, pairs, config, checkpoint_dir=tmp_path / "b", desc="t")
    assert len(log.rows) == 3 * (len(pairs) // 8)
    trained = (lambda b: b.model.visual) if mode == "image" else (lambda b: b.prompts)
    a, b = state(trained(uninterrupted)), state(trained(resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_params_and_modes_are_refused():
    with pytest.raises(ValueError, match=r"unknown keys \[.lr_typo.\]"):
        AdaptConfig.from_params({"lr_typo": 1})
    with pytest.raises(ValueError, match="mode"):
        AdaptConfig.from_params({"mode": "text"})


def test_too_few_pairs_is_a_clear_error(pairs, tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch"):
        adapt_clip(tiny_clip(), pairs[:3], cfg(), checkpoint_dir=tmp_path, desc="t")


@pytest.mark.parametrize("mode", ["image", "prompts"])
def test_the_global_generator_does_not_steer_training(pairs, tmp_path, mode):
    """Every draw comes from the run's own seeded generators: loading a CLIP, which may or may not draw from
    torch's global generator (a random init that a checkpoint then overwrites), cannot change the result."""
    results = []
    for global_seed in (1, 2):
        bundle = tiny_clip()
        torch.manual_seed(global_seed)
        adapt_clip(bundle, pairs, cfg(mode=mode, num_workers=2), checkpoint_dir=tmp_path / str(global_seed), desc="t")
        results.append(state(bundle.model.visual if mode == "image" else bundle.prompts))
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])
