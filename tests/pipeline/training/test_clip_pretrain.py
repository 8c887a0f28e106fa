import numpy as np
import pytest
import torch

from model.clip import build_clip
from pipeline.training.augment import random_resized_crops, random_resized_crops_with_masks
from pipeline.training.clip_pretrain import PretrainConfig, continued_config, pretrain_clip
from tests.doubles import killed_after_epoch


def test_full_scale_crop_without_flip_is_the_identity_resize():
    images = torch.rand(2, 3, 16, 16)
    generator = torch.Generator().manual_seed(0)
    crops = random_resized_crops(images, 16, (1.0, 1.0), generator)
    flipped = crops.flip(-1)
    for i in range(2):  # each sample is either the image or its mirror
        assert torch.allclose(crops[i], images[i], atol=1e-5) or torch.allclose(flipped[i], images[i], atol=1e-5)


def test_crops_are_a_function_of_the_generator():
    images = torch.rand(4, 3, 32, 32)
    a = random_resized_crops(images, 8, (0.3, 1.0), torch.Generator().manual_seed(5))
    b = random_resized_crops(images, 8, (0.3, 1.0), torch.Generator().manual_seed(5))
    assert a.shape == (4, 3, 8, 8) and torch.equal(a, b)


def test_config_refuses_unknown_keys():
    with pytest.raises(ValueError, match=r"pretraining: unknown keys \[.epochz.\]"):
        PretrainConfig.from_params({"epochz": 3}, seed=0)


def _data(n=16):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    captions = [[f"a photo of a {w}", f"{w} on the grass"] for w in ["zebra", "lemon", "ring", "sky"] * (n // 4)]
    return images, captions


@pytest.mark.slow
def test_pretraining_resumes_to_the_same_weights(tmp_path):
    images, captions = _data()
    cfg = PretrainConfig.from_params({"epochs": 3, "batch_size": 8, "warmup_steps": 1}, seed=0)

    def clip():
        return build_clip("ovseg-tiny-vit", device="cpu", seed=0, image_size=16)

    uninterrupted = clip()
    log = pretrain_clip(uninterrupted, images, captions, cfg, checkpoint_dir=tmp_path / "a")
    assert len(log.rows) == 6

    with killed_after_epoch(2):
        pretrain_clip(clip(), images, captions, cfg, checkpoint_dir=tmp_path / "b")
    resumed = clip()
    log = pretrain_clip(resumed, images, captions, cfg, checkpoint_dir=tmp_path / "b")
    assert [r["step"] for r in log.rows] == list(range(1, 7))
    a, b = uninterrupted.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pretraining_needs_a_caption_per_image(tmp_path):
    images, captions = _data()
    captions[3] = []
    cfg = PretrainConfig.from_params({"epochs": 1, "batch_size": 8}, seed=0)
    with pytest.raises(ValueError, match="at least one caption"):
        pretrain_clip(
            build_clip("ovseg-tiny-vit", device="cpu", seed=0, image_size=16),
            images,
            captions,
            cfg,
            checkpoint_dir=tmp_path,
        )


def test_masks_follow_the_image_crops():
    images = torch.zeros(3, 1, 20, 20)
    images[:, :, :, :10] = 1.0
    masks = images[:, 0] > 0.5
    out, out_masks = random_resized_crops_with_masks(images, masks, 10, (0.5, 0.9), torch.Generator().manual_seed(1))
    assert out_masks.dtype == torch.bool and out_masks.shape == (3, 10, 10)
    assert torch.equal(out_masks, out[:, 0] > 0.5)


def test_a_continued_run_takes_its_step_budget_in_as_many_epochs_as_it_needs():
    cfg = continued_config(
        {"lr": 3e-4, "warmup_steps": 2, "seed": 4}, steps=5, batch_size=8, num_images=16, what="base_clip_longer"
    )
    assert (cfg.epochs, cfg.batch_size, cfg.max_steps, cfg.lr, cfg.seed) == (3, 8, 5, 3e-4, 4)
    assert cfg.total_steps(16) == 5 and cfg.total_steps(17) == 5  # two full batches an epoch either way
    assert PretrainConfig(epochs=3, batch_size=8).total_steps(20) == 6  # no budget: every full batch
    with pytest.raises(ValueError, match=r"base_clip_longer: unknown keys \['epochs'\]"):
        continued_config({"epochs": 2}, steps=5, batch_size=8, num_images=16, what="base_clip_longer")
    with pytest.raises(ValueError, match="a budget of 0 steps"):
        continued_config({}, steps=0, batch_size=8, num_images=16, what="base_clip_longer")
    with pytest.raises(ValueError, match="6 images, fewer than one batch of 8"):
        continued_config({}, steps=3, batch_size=8, num_images=6, what="base_clip_longer")


@pytest.mark.slow
def test_a_step_budget_ending_mid_epoch_resumes_to_the_same_weights(tmp_path):
    images, captions = _data()
    cfg = continued_config({"warmup_steps": 1, "lr": 1e-3}, steps=5, batch_size=8, num_images=len(images), what="t")

    def clip():
        return build_clip("ovseg-tiny-vit", device="cpu", seed=0, image_size=16)

    uninterrupted = clip()
    log = pretrain_clip(uninterrupted, images, captions, cfg, checkpoint_dir=tmp_path / "a")
    assert [r["step"] for r in log.rows] == [1, 2, 3, 4, 5] and [r["epoch"] for r in log.rows] == [0, 0, 1, 1, 2]
    assert log.rows[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # the cosine spans the budget exactly

    with killed_after_epoch(2):
        pretrain_clip(clip(), images, captions, cfg, checkpoint_dir=tmp_path / "b")
    resumed = clip()
    log = pretrain_clip(resumed, images, captions, cfg, checkpoint_dir=tmp_path / "b")
    assert [r["step"] for r in log.rows] == [1, 2, 3, 4, 5]
    a, b = uninterrupted.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_global_generator_does_not_steer_pretraining(tmp_path):
    """base_clip_longer continues a loaded CLIP: its run draws from its own seeded generators only."""
    images, captions = _data(8)
    cfg = PretrainConfig.from_params({"epochs": 2, "batch_size": 8, "warmup_steps": 1}, seed=0)
    results = []
    for global_seed in (1, 2):
        bundle = build_clip("ovseg-tiny-vit", device="cpu", seed=0, image_size=16)
        torch.manual_seed(global_seed)
        pretrain_clip(bundle, images, captions, cfg, checkpoint_dir=tmp_path / str(global_seed))
        results.append(bundle.model.state_dict())
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


def test_an_aspect_ratio_range_gives_non_square_crops_and_square_crops_draw_as_before():
    images = torch.arange(2 * 40 * 40, dtype=torch.float32).reshape(2, 1, 40, 40)
    square = random_resized_crops(images, 8, (0.3, 0.6), torch.Generator().manual_seed(3), flip=False)
    same = random_resized_crops(images, 8, (0.3, 0.6), torch.Generator().manual_seed(3), flip=False, ratio=(1, 1))
    assert torch.equal(square, same)
    wide = random_resized_crops(images, 8, (0.3, 0.6), torch.Generator().manual_seed(3), flip=False, ratio=(3, 3))
    # a crop three times wider than high: a row spans more columns of the image than a column spans rows
    row_span = (wide[:, 0, :, -1] - wide[:, 0, :, 0]).abs().mean()
    column_span = (wide[:, 0, -1, :] - wide[:, 0, 0, :]).abs().mean() / 40  # one image row is 40 values
    assert row_span > 2 * column_span
