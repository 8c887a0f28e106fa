"""Dense CLIP features: the pass, the head, and the two poolings, on a ViT and a timm ConvNeXt tower."""

from __future__ import annotations

import open_clip
import pytest
import torch
import torch.nn.functional as F

from model.dense_clip import DenseClip, _query_block, mask_weights


@pytest.fixture(scope="module")
def convnext_clip() -> open_clip.CLIP:
    """A random timm ConvNeXt CLIP with the paper's head layout (``convnext_large_d_320``: no timm pool, MLP
    projection), at the smallest ConvNeXt size."""
    torch.manual_seed(0)
    vision = {
        "timm_model_name": "convnext_atto",
        "timm_model_pretrained": False,
        "timm_pool": "",
        "timm_proj": "mlp",
        "timm_drop": 0.0,
        "image_size": 64,
    }
    text = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
    return open_clip.CLIP(embed_dim=48, vision_cfg=vision, text_cfg=text).eval()


def images(size: int = 64, count: int = 2) -> torch.Tensor:
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_convnext_mean_of_the_whole_map_then_the_head_is_the_image_embedding(convnext_clip):
    dense_clip = DenseClip(convnext_clip, pooling="mean")
    x = images()
    with torch.no_grad():
        dense = dense_clip.encode(x)
        pooled = dense_clip.pool(dense, torch.ones(2, 1, *dense.grid))[:, 0]
        assert dense.features.shape == (2, dense_clip.width, 2, 2)  # stride 32
        assert torch.allclose(pooled, convnext_clip.encode_image(x), atol=1e-5)


def test_convnext_refuses_attention_pooling(convnext_clip):
    with pytest.raises(ValueError, match="ConvNeXt .* mean"):
        DenseClip(convnext_clip, pooling="attention")


def test_vit_attention_pooling_of_a_full_mask_is_the_image_embedding(tiny_clip):
    # A query starts as the class token and sees itself and every patch with equal bias: it follows
    # the class token exactly through every block, so the pooled embedding is encode_image's.
    dense_clip = DenseClip(tiny_clip.model, pooling="attention")
    x = images(tiny_clip.image_size)
    with torch.no_grad():
        dense = dense_clip.encode(x)
        pooled = dense_clip.pool(dense, torch.ones(2, 3, *dense.grid))
        expected = tiny_clip.model.encode_image(x)
    assert len(dense.states) == len(tiny_clip.model.visual.transformer.resblocks)
    for q in range(3):
        assert torch.allclose(pooled[:, q], expected, atol=1e-5)


def test_vit_runs_at_other_resolutions_and_masks_change_the_embedding(tiny_clip):
    dense_clip = DenseClip(tiny_clip.model, pooling="attention", attention_depth=2)
    x = images(96, 1)
    assert dense_clip.input_size(100, 93) == (96, 96)
    with torch.no_grad():
        dense = dense_clip.encode(x)
        assert dense.grid == (12, 12) and len(dense.states) == 2
        left, right = torch.zeros(1, 1, 12, 12), torch.zeros(1, 1, 12, 12)
        left[..., :6] = 1
        right[..., 6:] = 1
        pooled = dense_clip.pool(dense, torch.cat([left, right, left], dim=1))
    assert torch.equal(pooled[0, 0], pooled[0, 2])
    assert not torch.allclose(pooled[0, 0], pooled[0, 1])


def test_query_block_equals_the_block_on_the_joint_sequence(tiny_clip):
    block = tiny_clip.model.visual.transformer.resblocks[0]
    generator = torch.Generator().manual_seed(2)
    tokens, queries = torch.randn(2, 10, 128, generator=generator), torch.randn(2, 3, 128, generator=generator)
    weights = torch.rand(2, 3, 9, generator=generator) * (torch.rand(2, 3, 9, generator=generator) > 0.3)
    bias = torch.log(weights / weights.sum(-1, keepdim=True))
    # The joint sequence [tokens, queries]: tokens see tokens only; query i sees the patches (with bias) and itself.
    mask = torch.full((2, 13, 13), float("-inf"))
    mask[:, :10, :10] = 0
    mask[:, 10:, 1:10] = bias
    mask[:, 10:, 10:] = torch.where(torch.eye(3, dtype=torch.bool), 0.0, float("-inf"))
    heads = block.attn.num_heads
    with torch.no_grad():
        joint = block(torch.cat([tokens, queries], dim=1), attn_mask=mask.repeat_interleave(heads, 0))
        alone = _query_block(block, queries, tokens[:, 1:], bias)
    assert torch.allclose(alone, joint[:, 10:], atol=1e-5)


def test_mean_pooling_weights_positions_and_empty_maps_pool_everything(tiny_clip):
    dense_clip = DenseClip(tiny_clip.model, pooling="mean")
    with torch.no_grad():
        dense = dense_clip.encode(images(tiny_clip.image_size, 1))
        one_cell = torch.zeros(1, 1, *dense.grid)
        one_cell[0, 0, 3, 4] = 5.0
        pooled = dense_clip.pool(dense, torch.cat([one_cell, torch.zeros_like(one_cell)], dim=1))
        assert torch.allclose(pooled[0, 0], dense_clip.head(dense.features[0, :, 3, 4]), atol=1e-6)
        assert torch.allclose(pooled[0, 1], dense_clip.head(dense.features[0].mean(dim=(1, 2))), atol=1e-6)
        projected = dense_clip.projected(dense)
        assert torch.allclose(projected[0, :, 3, 4], dense_clip.head(dense.features[0, :, 3, 4]), atol=1e-6)


def test_mask_weights_are_the_covered_share_of_each_cell():
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :4, :2] = True
    weights = mask_weights(masks, (2, 2))
    assert torch.equal(weights[0], torch.tensor([[0.5, 0.0], [0.0, 0.0]]))
    assert torch.equal(weights[1], torch.zeros(2, 2))
    assert mask_weights(torch.zeros(0, 8, 8), (2, 2)).shape == (0, 2, 2)


def test_bad_settings_are_named(tiny_clip):
    with pytest.raises(ValueError, match="attention_depth must lie in 1..4"):
        DenseClip(tiny_clip.model, attention_depth=5)
    with pytest.raises(ValueError, match="pooling must be one of"):
        DenseClip(tiny_clip.model, pooling="max")
    with pytest.raises(ValueError, match="multiple of the stride 8"):
        DenseClip(tiny_clip.model).encode(torch.zeros(1, 3, 60, 64))
    with pytest.raises(ValueError, match="open_clip ViTs and timm ConvNeXt"):
        DenseClip(torch.nn.Linear(2, 2))


def test_pool_checks_the_grid(tiny_clip):
    dense_clip = DenseClip(tiny_clip.model)
    with torch.no_grad():
        dense = dense_clip.encode(images(tiny_clip.image_size, 1))
    with pytest.raises(ValueError, match="do not fit the dense map"):
        dense_clip.pool(dense, torch.ones(1, 2, 4, 4))
    assert F.normalize(dense_clip.pool(dense, torch.ones(1, 2, *dense.grid)), dim=-1).shape == (1, 2, 128)


def test_auto_pooling_is_attention_on_a_vit_and_mean_on_a_convnext(tiny_clip, convnext_clip):
    assert DenseClip(tiny_clip.model, pooling="auto").pooling == "attention"
    assert DenseClip(convnext_clip, pooling="auto").pooling == "mean"
