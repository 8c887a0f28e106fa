"""Stage base_clip with pretrained weights: the folder, the metrics and the loss plot DVC declares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from model.clip import build_clip, load_clip_folder
from stages.base_clip import LOSS_PLOT, METRICS, run


@pytest.fixture
def source():
    return build_clip("ovseg-tiny-vit", device="cpu", seed=3)


@pytest.fixture
def weights(source, tmp_path, monkeypatch) -> Path:
    """``source``'s weights as a checkpoint file; the test runs in ``tmp_path``."""
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(path))
    monkeypatch.chdir(tmp_path)
    return path


def test_pretrained_weights_are_materialised_and_the_declared_loss_plot_exists(source, weights):
    summary = run({"model": "ovseg-tiny-vit", "pretrained": str(weights), "device": "cpu"}, Path("clip"))
    loaded = load_clip_folder("clip", "cpu")
    image = torch.randn(1, 3, 64, 64)
    assert torch.equal(loaded.encode_image(image), source.encode_image(image))
    assert LOSS_PLOT.read_text() == "step,epoch,lr,loss\n"  # no training: the header only
    assert json.loads(METRICS.read_text())["pretrained"] == str(weights)
    assert summary["parameters"] == sum(p.numel() for p in source.model.parameters())


def test_the_template_set_is_checked_and_written_into_the_folder(weights):
    clip = {"model": "ovseg-tiny-vit", "pretrained": str(weights), "device": "cpu"}
    with pytest.raises(ValueError, match="clip.templates: .*no such template set"):
        run({**clip, "templates": "nope"}, Path("clip"))
    run({**clip, "templates": "photo"}, Path("clip"))
    assert load_clip_folder("clip", "cpu").templates == "photo"
