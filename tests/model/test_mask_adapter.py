"""The Mask-Adapter module: shapes, the paper's size, the mask prior, and its folder."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from model.dense_clip import DenseClip
from model.mask_adapter import (
    CONFIG_FILE,
    MaskAdapter,
    MaskAdapterConfig,
    clip_fingerprint,
    load_mask_adapter,
    save_mask_adapter,
)


def small(**overrides) -> MaskAdapterConfig:
    return MaskAdapterConfig(**{"clip_dim": 128, "num_maps": 4, "hidden": 16, "blocks": 2, **overrides})


def test_the_paper_configuration_has_about_15_million_parameters():
    adapter = MaskAdapter(MaskAdapterConfig(clip_dim=768))
    assert 14e6 < sum(p.numel() for p in adapter.parameters()) < 16e6


def test_maps_and_embeddings_have_one_row_per_mask(tiny_clip):
    torch.manual_seed(0)
    adapter = MaskAdapter(small()).eval()
    dense_clip = adapter.dense_clip(tiny_clip.model)
    with torch.no_grad():
        dense = dense_clip.encode(torch.randn(2, 3, 64, 64))
        projected = dense_clip.projected(dense)
        masks = (torch.rand(2, 5, 64, 64) > 0.5).float()
        assert adapter.maps(projected, masks).shape == (2, 5, 4, 8, 8)
        embeddings = adapter.embed(dense_clip, dense, masks)
    assert embeddings.shape == (2, 5, 128)
    assert torch.allclose(embeddings, adapter.embed(dense_clip, dense, masks, projected))


def test_the_mask_prior_raises_the_maps_inside_the_mask(tiny_clip):
    torch.manual_seed(0)
    plain = MaskAdapter(small()).eval()
    prior = copy.deepcopy(plain)
    prior.mask_prior.data.fill_(6.0)
    projected = torch.randn(1, 128, 8, 8)
    masks = torch.zeros(1, 1, 64, 64)
    masks[..., :32, :] = 1.0
    with torch.no_grad():
        difference = prior.maps(projected, masks) - plain.maps(projected, masks)
    assert torch.allclose(difference[..., :4, :], torch.full((1, 1, 4, 4, 8), 6.0))
    assert torch.allclose(difference[..., 4:, :], torch.full((1, 1, 4, 4, 8), -6.0))


def test_folder_round_trip_and_the_wrong_clip_is_refused(tiny_clip, tmp_path):
    torch.manual_seed(0)
    adapter = MaskAdapter(small(mask_prior=2.0))
    folder = save_mask_adapter(adapter, tmp_path / "adapter", clip_model=tiny_clip.model, extra={"clip": "x"})
    loaded = load_mask_adapter(folder, tiny_clip.model)
    assert loaded.config == adapter.config
    for name, tensor in adapter.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    assert json.loads((folder / CONFIG_FILE).read_text())["clip"] == "x"

    other = copy.deepcopy(tiny_clip.model)
    with torch.no_grad():
        other.visual.proj.add_(1e-3)
    assert clip_fingerprint(other) != clip_fingerprint(tiny_clip.model)
    with pytest.raises(ValueError, match="trained on another CLIP"):
        load_mask_adapter(folder, other)
    with pytest.raises(FileNotFoundError, match="mask_adapter.json: not found"):
        load_mask_adapter(tmp_path, tiny_clip.model)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_maps": 0}, "num_maps must be >= 1"),
        ({"mask_channels": 6}, "multiple of 4"),
        ({"pooling": "max"}, "pooling must be one of"),
    ],
)
def test_bad_configs_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        small(**overrides)


def test_the_adapter_pools_the_way_it_was_configured(tiny_clip):
    dense_clip = MaskAdapter(small(pooling="mean")).dense_clip(tiny_clip.model)
    assert isinstance(dense_clip, DenseClip) and dense_clip.pooling == "mean"
