"""The Mask-Adapter trainer: the data it prepares, the masks it draws, its losses, and resume equivalence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model.mask_adapter import MaskAdapter, MaskAdapterConfig
from model.masks import mask_iou
from model.proposer import build_proposer, load_proposer_config
from pipeline.training.mask_adapter import (
    AdapterData,
    AdapterTrainConfig,
    BatchPreparer,
    StreamingData,
    adapter_losses,
    augment_rows,
    draw_masks,
    mask_layout,
    matched_proposals,
    prepare_data,
    train_adapter,
)
from pipeline.training.proposer import TrainingSet
from tests.doubles import killed_after_epoch

SIZE = 32


def scenes(count: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels with 2–3 seen classes each (-1 ignore): a band of stuff, one or two boxes."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, SIZE, SIZE, 3), dtype=np.uint8)
    labels = np.full((count, SIZE, SIZE), -1, np.int16)
    for i in range(count):
        labels[i, SIZE // 2 :] = i % 3
        labels[i, 2:12, 2:12] = 3 + i % 2
        if i % 2:
            labels[i, 4:14, 18:30] = 5
    return images, labels


@pytest.fixture(scope="module")
def data(tiny_clip) -> tuple[AdapterData, torch.Tensor]:
    torch.manual_seed(0)
    proposer = build_proposer(dataclasses.replace(load_proposer_config("proposer-tiny"), text_dim=128)).eval()
    text = torch.nn.functional.normalize(torch.randn(6, 128, generator=torch.Generator().manual_seed(1)), dim=-1)
    dense_clip = MaskAdapter(adapter_config()).dense_clip(tiny_clip.model)
    # match_iou 0 and threshold 0: every proposal that touches a segment matches it, so phase (b) has work.
    prepare = BatchPreparer(
        dense_clip, tiny_clip.mean, tiny_clip.std, proposer, text, recipe(match_iou=0.0, match_threshold=0.0)
    )
    return prepare_data(TrainingSet(tuple(map(str, range(6))), *scenes()), prepare, batch_size=4), text


def adapter_config() -> MaskAdapterConfig:
    return MaskAdapterConfig(clip_dim=128, num_maps=2, hidden=8, blocks=1, mask_prior=4.0)


def recipe(**overrides) -> AdapterTrainConfig:
    return AdapterTrainConfig(
        **{"warmup_epochs": 1, "mixed_epochs": 1, "batch_size": 3, "lr": 1e-2, "warmup_steps": 0, **overrides}
    )


def train(adapter: MaskAdapter, clip, data, cfg: AdapterTrainConfig, directory):
    prepared, text = data
    return train_adapter(
        adapter, adapter.dense_clip(clip.model), prepared, text, 10.0, cfg, checkpoint_dir=directory, identity="t"
    )


def test_mask_iou_the_matching_uses():
    a = torch.zeros(2, 4, 4, dtype=torch.bool)
    a[0, :2] = True
    a[1] = True
    b = torch.zeros(1, 4, 4, dtype=torch.bool)
    b[0, :, :2] = True
    assert torch.allclose(mask_iou(a, b), torch.tensor([[4 / 12], [8 / 16]]))


def test_proposals_match_at_0_4_and_enter_the_adapter_at_0_5():
    segment = torch.zeros(1, 4, 4, dtype=torch.bool)
    segment[0, :2] = True
    probs = torch.zeros(3, 4, 4)
    probs[0, :2] = 0.4  # matches (sigmoid >= 0.4), but is empty at the input threshold
    probs[1, :2] = 0.6  # matches, and enters as the segment
    probs[2, :2] = 0.39  # below the match threshold: no IoU with the segment
    cfg = AdapterTrainConfig()
    assert (cfg.match_threshold, cfg.mask_threshold) == (0.4, 0.5)
    (matches,) = matched_proposals(probs, segment, cfg)
    assert matches.shape == (2, 4, 4)
    assert torch.equal(matches[0], torch.zeros(4, 4))
    assert torch.equal(matches[1], segment[0].float())
    # one threshold for both (the former rule) would have dropped the first match
    (one,) = matched_proposals(probs, segment, AdapterTrainConfig(match_threshold=0.5))
    assert one.shape[0] == 1


def test_prepared_data_holds_the_segments_and_their_matches(data):
    prepared, _ = data
    _, labels = scenes()
    assert len(prepared) == 6 and prepared.dense.grid == (4, 4) and prepared.projected.shape == (6, 128, 4, 4)
    for i, (masks, classes) in enumerate(zip(prepared.segment_masks, prepared.segment_labels)):
        assert classes.tolist() == sorted(set(labels[i][labels[i] >= 0].tolist()))
        assert masks.shape == (len(classes), 16, 16)  # 4x the grid
        assert len(prepared.candidates[i]) == len(classes)
    assert sum(len(c) for per in prepared.candidates for c in per) > 0


def test_instance_maps_give_one_segment_per_instance(tiny_clip):
    images, labels = scenes(2)
    dense_clip = MaskAdapter(adapter_config()).dense_clip(tiny_clip.model)
    prepare = BatchPreparer(dense_clip, tiny_clip.mean, tiny_clip.std, None, torch.zeros(6, 128), recipe())
    ids = torch.zeros(2, SIZE, SIZE, dtype=torch.long)
    ids[0, 2:12, 2:7], ids[0, 2:12, 7:12] = 1, 2  # image 0's box (class 3) is two instances
    batch = torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(labels).long()
    per_class = prepare(*batch, mixed=False)
    per_instance = prepare(*batch, ids, mixed=False)
    assert per_class.segment_labels[0].tolist() == [0, 3]
    assert per_instance.segment_labels[0].tolist() == [0, 3, 3]
    assert torch.allclose(
        per_instance.segment_masks[0][1] + per_instance.segment_masks[0][2], per_class.segment_masks[0][1]
    )
    assert per_instance.segment_labels[1].tolist() == per_class.segment_labels[1].tolist()  # no instances: per class


def test_warm_up_draws_ground_truth_only_and_caps_it(data):
    prepared, _ = data
    step = draw_masks(prepared.batch([0, 1]), mixed=False, cfg=recipe(max_gt_masks=2), rng=np.random.default_rng(0))
    assert step.masks.shape == (2, 2, 16, 16) and step.proposal.numel() == 0
    for b, i in enumerate([0, 1]):
        assert set(step.labels[b].tolist()) <= set(prepared.segment_labels[i].tolist())


def test_mixed_masks_pair_each_proposal_with_its_segment(data):
    prepared, _ = data
    cfg = recipe(mixed_gt_masks=1, matched_masks=2, match_iou=0.0)
    step = draw_masks(prepared.batch([1, 3]), mixed=True, cfg=cfg, rng=np.random.default_rng(0))
    labels = step.labels.flatten()
    assert step.proposal.numel() == step.segment.numel() > 0
    assert torch.equal(labels[step.proposal], labels[step.segment])
    width = step.labels.shape[1]
    for p, s in zip(step.proposal.tolist(), step.segment.tolist()):
        assert p // width == s // width  # same image
    per_image = (step.proposal // width).bincount(minlength=2)
    assert int(per_image.max()) <= 2
    assert (labels[labels < 0].numel() + (labels >= 0).sum()) == labels.numel()


def test_losses_weigh_cross_entropy_and_consistency(data):
    prepared, text = data
    step = draw_masks(prepared.batch([1, 3]), mixed=True, cfg=recipe(match_iou=0.0), rng=np.random.default_rng(0))
    embeddings = torch.randn(*step.labels.shape, 128, generator=torch.Generator().manual_seed(3))
    classifier = torch.cat([text, torch.randn(1, 128)])
    losses = adapter_losses(embeddings, step, classifier, torch.tensor(10.0), recipe(ce_weight=2, consistency_weight=5))
    assert torch.isclose(losses["loss"], 2 * losses["ce"] + 5 * losses["consistency"])
    assert losses["consistency"] > 0
    off = adapter_losses(embeddings, step, classifier, torch.tensor(10.0), recipe(consistency_weight=0))
    assert torch.isclose(off["loss"], 2 * off["ce"])


def test_consistency_is_averaged_over_the_matched_slots_of_every_image(data):
    prepared, text = data
    cfg = recipe(match_iou=0.0, matched_masks=8)
    step = draw_masks(prepared.batch([1, 3]), mixed=True, cfg=cfg, rng=np.random.default_rng(0))
    embeddings = torch.randn(*step.labels.shape, 128, generator=torch.Generator().manual_seed(3))
    classifier = torch.cat([text, torch.randn(1, 128)])
    losses = adapter_losses(embeddings, step, classifier, torch.tensor(10.0), cfg)
    flat = torch.nn.functional.normalize(embeddings.flatten(0, 1), dim=-1)
    per_pair = 1 - (flat[step.proposal] * flat[step.segment]).sum(-1)
    assert 0 < step.proposal.numel() < 2 * 8  # some slots are empty
    # 1 - cos averaged over 2 images x 8 slots, the empty slots counting with loss 0 (not a mean over the pairs)
    assert torch.isclose(losses["consistency"], per_pair.sum() / 16)
    assert losses["consistency"] < per_pair.mean()


def test_the_slot_mean_splits_across_processes(data):
    prepared, text = data
    cfg = recipe(match_iou=0.0, matched_masks=8)
    rows = [1, 3]
    whole = draw_masks(prepared.batch(rows), mixed=True, cfg=cfg, rng=np.random.default_rng(0))
    layout = mask_layout(prepared.batch(rows))
    embeddings = torch.randn(*whole.labels.shape, 128, generator=torch.Generator().manual_seed(3))
    classifier = torch.cat([text, torch.randn(1, 128)])
    expected = adapter_losses(embeddings, whole, classifier, torch.tensor(10.0), cfg)
    totals = torch.tensor([int((whole.labels >= 0).sum()), 2 * 8])  # masks and slots of both processes
    shares = []
    for k, row in enumerate(rows):
        half = draw_masks(
            prepared.batch([row]), True, cfg, np.random.default_rng(0), layout=layout, part_of=(k, len(rows))
        )
        shares.append(adapter_losses(embeddings[k : k + 1], half, classifier, torch.tensor(10.0), cfg, totals.to))
    for term in ("ce", "consistency"):
        assert torch.isclose(shares[0][term] + shares[1][term], expected[term])


def test_training_changes_the_adapter_and_lowers_the_loss(data, tiny_clip, tmp_path):
    _prepared, _text = data
    torch.manual_seed(0)
    adapter = MaskAdapter(adapter_config())
    before = {k: v.clone() for k, v in adapter.state_dict().items()}
    log = train(adapter, tiny_clip, data, recipe(warmup_epochs=4, mixed_epochs=4), tmp_path)
    assert any(not torch.equal(before[k], v) for k, v in adapter.state_dict().items())
    assert log.epoch_means(7)["ce"] < log.epoch_means(0)["ce"]
    assert {"loss", "ce", "consistency"} <= set(log.columns)


@pytest.mark.slow
def test_killed_then_resumed_run_ends_with_the_same_weights(data, tiny_clip, tmp_path):
    _prepared, _text = data
    cfg = recipe(warmup_epochs=1, mixed_epochs=2)

    def fresh() -> MaskAdapter:
        torch.manual_seed(0)
        return MaskAdapter(adapter_config())

    uninterrupted = fresh()
    train(uninterrupted, tiny_clip, data, cfg, tmp_path / "a")
    with killed_after_epoch(2):
        train(fresh(), tiny_clip, data, cfg, tmp_path / "b")
    resumed = fresh()
    log = train(resumed, tiny_clip, data, cfg, tmp_path / "b")
    assert len(log.rows) == 3 * 2
    a, b = uninterrupted.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_recipes_are_named(data, tiny_clip, tmp_path):
    with pytest.raises(ValueError, match="unknown keys"):
        AdapterTrainConfig.from_params({"lr_typo": 1})
    with pytest.raises(ValueError, match="train at least one epoch"):
        recipe(warmup_epochs=0, mixed_epochs=0)
    _prepared, _text = data
    adapter = MaskAdapter(adapter_config())
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(adapter, tiny_clip, data, recipe(batch_size=64), tmp_path)


def test_streaming_prepares_each_batch_as_the_cached_set_does(data, tiny_clip):
    prepared, text = data
    dense_clip = MaskAdapter(adapter_config()).dense_clip(tiny_clip.model)
    prepare = BatchPreparer(dense_clip, tiny_clip.mean, tiny_clip.std, None, text, recipe(mixed_epochs=0))
    images = TrainingSet(tuple(map(str, range(6))), *scenes())
    streamed = StreamingData(images, prepare).batch([4, 1])
    cached = prepared.batch([4, 1])
    assert torch.allclose(streamed.dense.features, cached.dense.features, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(streamed.segment_masks, cached.segment_masks))
    assert all(len(c) == 0 for image in streamed.candidates for c in image)  # no mixed phase: no proposer pass
    assert StreamingData(images, prepare).fingerprint() == images.fingerprint()


def test_augmentation_warps_labels_and_instances_alike_and_is_seeded():
    images, labels = scenes(4)
    labels = torch.from_numpy(labels).long().clamp_min(0)  # no ignore: padding is the only -1 after the warp
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    cfg = recipe(augment=True, scale_range=(0.5, 2.0))
    out, warped, (ids,) = augment_rows(x, labels, labels + 1, torch.Generator().manual_seed(0), cfg, (0.5,) * 3)
    assert out.shape == (4, 3, SIZE, SIZE) and out.dtype == torch.float32 and warped.shape == labels.shape
    assert torch.equal(ids, warped + 1)  # the same warp; padding: ignore in the labels, no instance in the ids
    assert not torch.equal(warped, labels) and bool((warped == -1).any())  # zoomed out somewhere: padded
    again, *_ = augment_rows(x, labels, None, torch.Generator().manual_seed(0), cfg, (0.5,) * 3)
    assert torch.equal(again, out)
    other, *_ = augment_rows(x, labels, None, torch.Generator().manual_seed(1), cfg, (0.5,) * 3)
    assert not torch.equal(other, out)


def test_flips_alone_mirror_some_images_and_leave_the_others():
    images, labels = scenes(6)
    labels = torch.from_numpy(labels).long()
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    cfg = recipe(augment=True, scale_range=(1.0, 1.0), hflip=True)
    _, warped, _ = augment_rows(x, labels, None, torch.Generator().manual_seed(0), cfg, (0.5,) * 3)
    mirrored = [torch.equal(w, lab.flip(-1)) for w, lab in zip(warped, labels)]
    kept = [torch.equal(w, lab) for w, lab in zip(warped, labels)]
    assert all(m or k for m, k in zip(mirrored, kept)) and any(mirrored) and any(kept)


def test_augmented_training_prepares_every_draw_and_is_deterministic(data, tiny_clip, tmp_path):
    _prepared, text = data
    cfg = recipe(augment=True, mixed_epochs=0, warmup_epochs=2)

    calls: list[torch.Tensor] = []

    class Recording(BatchPreparer):
        def __call__(self, images, *rest, **kw):
            calls.append(images)
            return super().__call__(images, *rest, **kw)

    def run(directory):
        torch.manual_seed(0)
        adapter = MaskAdapter(adapter_config())
        dense_clip = adapter.dense_clip(tiny_clip.model)
        prepare = Recording(dense_clip, tiny_clip.mean, tiny_clip.std, None, text, cfg)
        streamed = StreamingData(TrainingSet(tuple(map(str, range(6))), *scenes()), prepare)
        train_adapter(adapter, dense_clip, streamed, text, 10.0, cfg, checkpoint_dir=directory, identity="t")
        return adapter.state_dict()

    first = run(tmp_path / "a")
    assert len(calls) == 4 and all(c.dtype == torch.float32 for c in calls)  # 2 epochs x 2 batches, augmented
    assert not torch.equal(calls[0], calls[2])  # epoch 1 draws anew (same seed, other epoch)
    second = run(tmp_path / "b")
    assert all(torch.equal(first[k], second[k]) for k in first)
    with pytest.raises(ValueError, match="augment needs the data prepared per batch"):
        train(MaskAdapter(adapter_config()), tiny_clip, data, cfg, tmp_path / "c")


def test_streaming_runs_the_proposer_in_mixed_epochs_only(data, tiny_clip):
    prepared, text = data
    torch.manual_seed(0)
    proposer = build_proposer(dataclasses.replace(load_proposer_config("proposer-tiny"), text_dim=128)).eval()
    calls = []
    proposer.register_forward_hook(lambda *_: calls.append(1))
    dense_clip = MaskAdapter(adapter_config()).dense_clip(tiny_clip.model)
    prepare = BatchPreparer(
        dense_clip, tiny_clip.mean, tiny_clip.std, proposer, text, recipe(match_iou=0.0, match_threshold=0.0)
    )
    streamed = StreamingData(TrainingSet(tuple(map(str, range(6))), *scenes()), prepare)
    ground_truth = streamed.batch([4, 1], mixed=False)
    assert not calls and all(len(c) == 0 for image in ground_truth.candidates for c in image)
    mixed = streamed.batch([4, 1])
    assert calls and [[len(c) for c in image] for image in mixed.candidates] == [
        [len(c) for c in image] for image in prepared.batch([4, 1]).candidates
    ]
