"""The text-prompt learner: what it trains, that it learns, its sampling, and resume equivalence."""

import numpy as np
import pytest
import torch
from PIL import Image

from core.rle import encode_rle
from model.clip import build_clip
from model.text_prompts import TextPrompts
from pipeline.training.mask_pairs import MaskPair
from pipeline.training.text_prompts import TextPromptConfig, learn_text_prompts, sample_per_class
from tests.doubles import killed_after_epoch

CLASSES = ["zebra, horse", "lemon", "ring, hoop", "sky"]
COLOURS = [(250, 250, 250), (240, 220, 20), (200, 120, 30), (60, 120, 240)]


@pytest.fixture
def pairs(tmp_path):
    """Eight images, each with four flat-coloured class regions: a class is its colour."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(8):
        image = rng.integers(0, 60, (24, 24, 3), dtype=np.uint8)
        masks = []
        for j, colour in enumerate(COLOURS):
            mask = np.zeros((24, 24), bool)
            mask[j * 6 : (j + 1) * 6, (i % 3) * 4 : (i % 3) * 4 + 12] = True
            image[mask] = colour
            masks.append(mask)
        path = tmp_path / f"{i}.png"
        Image.fromarray(image).save(path)
        out += [MaskPair(str(path), encode_rle(mask), name.split(",")[0]) for mask, name in zip(masks, CLASSES)]
    return out


def tiny_clip():
    return build_clip("ovseg-tiny-vit", device="cpu", seed=0, image_size=32)


def cfg(**kw):
    base = dict(n_ctx=4, epochs=2, batch_size=8, samples_per_class=None, lr=0.02, warmup_steps=2)
    return TextPromptConfig.from_params({**base, **kw})


def test_sample_per_class_caps_each_class_and_keeps_the_order(pairs):
    kept = sample_per_class(pairs, 3, seed=0)
    assert [sum(p.noun == name.split(",")[0] for p in kept) for name in CLASSES] == [3, 3, 3, 3]
    assert [pairs.index(p) for p in kept] == sorted(pairs.index(p) for p in kept)
    assert kept == sample_per_class(pairs, 3, seed=0) and kept != sample_per_class(pairs, 3, seed=1)
    assert sample_per_class(pairs, None, seed=0) == pairs


def test_bad_settings_and_data_are_named(pairs, tmp_path):
    with pytest.raises(ValueError, match=r"unknown keys \['lr_typo'\]"):
        TextPromptConfig.from_params({"lr_typo": 1})
    with pytest.raises(ValueError, match="text_prompts.n_ctx must be >= 1"):
        TextPromptConfig.from_params({"n_ctx": 0})
    with pytest.raises(ValueError, match=r"outside the class list: \['lemon'\]"):
        learn_text_prompts(tiny_clip(), pairs, ["zebra", "ring", "sky"], cfg(), checkpoint_dir=tmp_path, desc="t")
    with pytest.raises(ValueError, match="fewer than one batch"):
        learn_text_prompts(tiny_clip(), pairs[:4], CLASSES, cfg(), checkpoint_dir=tmp_path, desc="t")


@pytest.mark.slow
def test_training_lowers_the_loss_and_changes_only_the_context(pairs, tmp_path):
    bundle = tiny_clip()
    before = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    log = learn_text_prompts(bundle, pairs, CLASSES, cfg(epochs=8, lr=0.5), checkpoint_dir=tmp_path, desc="t")
    assert len(log.rows) == 8 * (len(pairs) // 8)
    assert all(torch.equal(before[k], v) for k, v in bundle.model.state_dict().items())
    initial = TextPrompts.for_clip(bundle.model, 4, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(initial.ctx, bundle.text_prompts.ctx)
    first, last = log.epoch_means(0)["loss"], log.epoch_means(7)["loss"]
    assert last < first - 0.1, (first, last)


@pytest.mark.slow
def test_killed_then_resumed_run_ends_with_the_same_context(pairs, tmp_path):
    config = cfg(epochs=3)
    uninterrupted = tiny_clip()
    learn_text_prompts(uninterrupted, pairs, CLASSES, config, checkpoint_dir=tmp_path / "a", desc="t")

    with killed_after_epoch(1):
        learn_text_prompts(tiny_clip(), pairs, CLASSES, config, checkpoint_dir=tmp_path / "b", desc="t")
    resumed = tiny_clip()
    log = learn_text_prompts(resumed, pairs, CLASSES, config, checkpoint_dir=tmp_path / "b", desc="t")
    assert len(log.rows) == 3 * (len(pairs) // 8)
    assert torch.equal(uninterrupted.text_prompts.ctx, resumed.text_prompts.ctx)


def test_the_global_generator_does_not_steer_learning(pairs, tmp_path):
    contexts = []
    for global_seed in (1, 2):
        bundle = tiny_clip()
        torch.manual_seed(global_seed)
        learn_text_prompts(
            bundle, pairs, CLASSES, cfg(epochs=1, num_workers=2), checkpoint_dir=tmp_path / str(global_seed), desc="t"
        )
        contexts.append(bundle.text_prompts.ctx.detach().clone())
    assert torch.equal(*contexts)
