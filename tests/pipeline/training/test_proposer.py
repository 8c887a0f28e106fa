"""The proposer trainer: settings, in-memory data, augmentation, and resume after a kill."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.proposer import build_proposer, load_proposer_config
from pipeline.training.augment import augment_batch
from pipeline.training.checkpoint import Checkpointer
from pipeline.training.proposer import (
    ProposerTrainConfig,
    StreamingTrainingSet,
    TrainingSet,
    load_training_set,
    train_proposer,
)
from tests.doubles import killed_after_epoch, shapes

CPU = torch.device("cpu")


def test_config_validation_names_the_problem() -> None:
    assert ProposerTrainConfig.from_params({"epochs": 2}).epochs == 2
    with pytest.raises(ValueError, match=r"proposer.train: unknown keys \['config'\]"):
        ProposerTrainConfig.from_params({"epochs": 2, "config": "proposer-demo"})  # refused, never dropped
    for bad, message in (
        ({"epochs": 0}, "epochs"),
        ({"scale_range": [1.2, 0.8]}, "scale_range"),
        ({"precision": "fp8"}, "precision"),
        ({"crop_size": 0}, "crop_size"),
        ({"grad_clip": -1}, "grad_clip"),
    ):
        with pytest.raises(ValueError, match=message):
            ProposerTrainConfig(**bad)


def test_load_training_set_checks_sizes_and_resizes() -> None:
    data = load_training_set(shapes(4), threads=1)
    assert data.images.shape == (4, 32, 32, 3) and data.labels.dtype == np.int16
    assert data.keys == ("img00", "img01", "img02", "img03")
    assert data.fingerprint() == load_training_set(shapes(4), threads=1).fingerprint()
    images, labels = data.batch([2, 0])
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(labels[1], torch.from_numpy(shapes(4).load("img00").label).long())
    with pytest.raises(ValueError, match="img02: image size 32x28 differs"):
        load_training_set(shapes(4, odd_one="img02"), threads=1)
    resized = load_training_set(shapes(4, odd_one="img02"), image_size=16, threads=1)
    assert resized.images.shape == (4, 16, 16, 3)
    assert set(np.unique(resized.labels)) <= {-1, 0, 1, 2}
    assert load_training_set(shapes(4), limit=2, threads=1).keys == ("img00", "img01")


def test_streaming_set_decodes_the_same_batches() -> None:
    memory = load_training_set(shapes(4), threads=1)
    streaming = StreamingTrainingSet(shapes(4), 32, threads=2)
    assert len(streaming) == 4 and streaming.keys == memory.keys and streaming.max_label() is None
    for got, want in zip(streaming.batch([3, 1]), memory.batch([3, 1])):
        assert torch.equal(got, want)
    assert streaming.fingerprint() == StreamingTrainingSet(shapes(4), 32).fingerprint()
    assert streaming.fingerprint() != StreamingTrainingSet(shapes(4), 16).fingerprint()
    images, labels = StreamingTrainingSet(shapes(4, odd_one="img01"), 16).batch([0, 1])
    assert images.shape == (2, 3, 16, 16) and labels.shape == (2, 16, 16)


def _train(data: TrainingSet, text: torch.Tensor, checkpoint_dir, cfg: ProposerTrainConfig):
    torch.manual_seed(0)
    config = load_proposer_config("proposer-tiny")
    config = dataclasses.replace(config, decoder=dataclasses.replace(config.decoder, dropout=0.1))
    model = build_proposer(config)
    log = train_proposer(model, data, text, cfg, device=CPU, checkpoint_dir=checkpoint_dir, desc="test")
    return model, log


def test_training_learns_and_resumes_to_identical_weights(tmp_path) -> None:
    data = load_training_set(shapes(8), threads=1)
    text = F.normalize(torch.randn(3, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    cfg = ProposerTrainConfig(
        epochs=3, batch_size=4, lr=3e-3, warmup_steps=2, crop_size=28, scale_range=(0.8, 1.2), precision="fp32", seed=3
    )
    straight, straight_log = _train(data, text, tmp_path / "a", cfg)
    rows = straight_log.rows
    assert len(rows) == 6 and rows[-1]["loss"] < rows[0]["loss"]
    assert {"loss", "loss_ce", "loss_mask", "loss_dice", "loss_aux", "lr"} <= set(rows[0])
    assert [epoch for epoch, _ in Checkpointer(tmp_path / "a").checkpoints()] == [2]  # the newest, not the last of 3

    with killed_after_epoch(1):
        _train(data, text, tmp_path / "b", cfg)
    resumed, resumed_log = _train(data, text, tmp_path / "b", cfg)
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed_log.rows == straight_log.rows

    # a different recipe does not resume the other run's checkpoint
    with pytest.warns(UserWarning, match="another run"):
        other, _ = _train(data, text, tmp_path / "b", dataclasses.replace(cfg, lr=1e-3))
    assert not torch.equal(other.state_dict()["class_head.no_object"], a["class_head.no_object"])


def test_training_refuses_labels_beyond_the_text_embeddings(tmp_path) -> None:
    data = load_training_set(shapes(4), threads=1)
    text = F.normalize(torch.randn(2, 16), dim=-1)
    with pytest.raises(ValueError, match="only 2 text embeddings"):
        _train(data, text, tmp_path, ProposerTrainConfig(epochs=1, batch_size=2))
    with pytest.raises(ValueError, match="batch_size=8"):
        _train(data, F.normalize(torch.randn(3, 16), dim=-1), tmp_path, ProposerTrainConfig(epochs=1, batch_size=8))


def test_augment_identity_flip_and_crop() -> None:
    data = load_training_set(shapes(4), threads=1)
    images, labels = data.batch(range(4))
    gen = torch.Generator().manual_seed(0)
    x, y = augment_batch(images, labels, gen, crop_size=32)  # no zoom, no flip, full-size window
    assert torch.allclose(x, images.float() / 255, atol=1e-5) and torch.equal(y, labels)
    x, y = augment_batch(images, labels, gen, hflip=True)
    for i in range(4):
        flipped = torch.equal(y[i], labels[i].flip(-1))
        assert flipped or torch.equal(y[i], labels[i])
        expected = (images[i].flip(-1) if flipped else images[i]).float() / 255
        assert torch.allclose(x[i], expected, atol=1e-5)
    # zooming out pads with the fill colour and ignore labels
    plain = torch.full((2, 3, 32, 32), 200, dtype=torch.uint8)
    zeros = torch.zeros(2, 32, 32, dtype=torch.long)
    args = dict(scale_range=(0.5, 0.5), crop_size=24, fill=(0.25, 0.5, 0.75))
    x, y = augment_batch(plain, zeros, torch.Generator().manual_seed(1), **args)
    assert x.shape == (2, 3, 24, 24) and set(y.unique().tolist()) == {-1, 0}
    near_image = F.max_pool2d((y == 0).float()[:, None], 3, stride=1, padding=1)[:, 0] > 0
    outside = (~near_image)[:, None].expand_as(x)  # boundary pixels blend image and fill bilinearly
    fill = torch.tensor([0.25, 0.5, 0.75]).view(1, 3, 1, 1).expand_as(x)
    assert torch.allclose(x[outside], fill[outside], atol=1e-5)
    assert int((y == 0).sum()) == 2 * 16 * 16  # the whole image, shrunk to 16 px, lies inside the window
    again = augment_batch(plain, zeros, torch.Generator().manual_seed(1), **args)
    assert torch.equal(again[0], x) and torch.equal(again[1], y)
