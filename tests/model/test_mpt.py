"""model.mpt: mask prompt tuning equals plain CLIP on full masks and only ever trains the prompts."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from model.clip import CONFIG_DIR, build_clip
from model.mpt import (
    MaskPrompts,
    encode_image_with_prompts,
    freeze_clip_for_prompt_tuning,
    load_mask_prompts,
    patch_foreground,
    save_mask_prompts,
)

CPU = torch.device("cpu")


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _full(n: int, size: int) -> torch.Tensor:
    return torch.ones(n, size, size, dtype=torch.bool)


def _prompts(bundle, depth: int, seed: int = 0) -> MaskPrompts:
    return MaskPrompts.for_visual(bundle.model, depth, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_all_foreground_equals_plain_clip_exactly_tiny(tiny_clip, depth):
    images = _images(4, 64)
    with torch.no_grad():
        plain = tiny_clip.model.encode_image(images)
        prompted = encode_image_with_prompts(tiny_clip.model, images, _full(4, 64), _prompts(tiny_clip, depth))
    assert torch.equal(prompted, plain)


def _assert_mpt_exact_on(bundle, size: int) -> None:
    images = _images(1, size)
    prompts = _prompts(bundle, 3)
    partial = torch.zeros(1, size, size, dtype=torch.bool)
    partial[:, : size // 3, : size // 2] = True
    with torch.no_grad():
        plain = bundle.model.encode_image(images)
        assert torch.equal(encode_image_with_prompts(bundle.model, images, _full(1, size), prompts), plain)
        assert not torch.allclose(encode_image_with_prompts(bundle.model, images, partial, prompts), plain, atol=1e-3)


def test_all_foreground_equals_plain_clip_exactly_vit_b16():
    bundle = build_clip("ViT-B-16", device=CPU, seed=0)
    assert _prompts(bundle, 3).prompts.shape == (3, 196, 768)
    _assert_mpt_exact_on(bundle, 224)


def test_vit_l14_geometry_with_fewer_blocks(tmp_path):
    config = open_clip.get_model_config("ViT-L-14")
    config["vision_cfg"]["layers"] = 3
    config["text_cfg"]["layers"] = 1
    path = tmp_path / "vit-l14-short.json"
    path.write_text(json.dumps(config))
    bundle = build_clip(str(path), device=CPU, seed=0)
    assert _prompts(bundle, 3).prompts.shape == (3, 256, 1024)
    _assert_mpt_exact_on(bundle, 224)


@pytest.mark.slow
def test_all_foreground_equals_plain_clip_exactly_vit_l14():
    _assert_mpt_exact_on(build_clip("ViT-L-14", device=CPU, seed=0), 224)


def test_background_patches_are_replaced_at_every_depth(tiny_clip):
    """Only the foreground patch (1, 2) is seen: the rest of the image cannot matter."""
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[0, 9, 17] = True  # one pixel inside patch row 1, column 2 (8 px patches)
    a, b = _images(1, 64, seed=1), _images(1, 64, seed=2)
    b_same_patch = b.clone()
    b_same_patch[:, :, 8:16, 16:24] = a[:, :, 8:16, 16:24]
    prompts = _prompts(tiny_clip, 3)
    with torch.no_grad():
        out_a = encode_image_with_prompts(tiny_clip.model, a, mask, prompts)
        out_b = encode_image_with_prompts(tiny_clip.model, b, mask, prompts)
        out_b_same = encode_image_with_prompts(tiny_clip.model, b_same_patch, mask, prompts)
        assert torch.allclose(out_a, out_b_same, atol=1e-6)
        assert not torch.allclose(out_a, out_b, atol=1e-3)
        # All background: the output no longer depends on the image at all.
        empty = torch.zeros_like(mask)
        assert torch.allclose(
            encode_image_with_prompts(tiny_clip.model, a, empty, prompts),
            encode_image_with_prompts(tiny_clip.model, b, empty, prompts),
            atol=1e-6,
        )


def test_deeper_prompts_change_the_output(tiny_clip):
    mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    mask[:, 20:40, 20:40] = True
    images = _images(2, 64)
    shallow = _prompts(tiny_clip, 1)
    deep = MaskPrompts(3, 64, 128, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        deep.prompts[0] = shallow.prompts[0]
        same_first = encode_image_with_prompts(tiny_clip.model, images, mask, shallow)
        deeper = encode_image_with_prompts(tiny_clip.model, images, mask, deep)
    assert not torch.allclose(same_first, deeper, atol=1e-4)


def test_patch_foreground_is_any_pixel_per_patch():
    mask = torch.zeros(2, 16, 24, dtype=torch.bool)
    mask[0, 9, 17] = True
    mask[1, 0, 0] = True
    mask[1, 15, 23] = True
    fg = patch_foreground(mask, (8, 8))
    assert fg.shape == (2, 6)
    assert fg[0].tolist() == [False, False, False, False, False, True]
    assert fg[1].tolist() == [True, False, False, False, False, True]
    assert torch.equal(patch_foreground(mask[:, None], (8, 8)), fg)


def test_legacy_sequence_first_layout_gives_the_same_result(tiny_clip):
    """open_clip's transformers may run (L, N, D); the replacement must follow the layout."""
    images = _images(2, 64)
    mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    mask[0, :30, :40] = True
    mask[1, 33:, 5:] = True
    prompts = _prompts(tiny_clip, 3)
    bundle = build_clip("ovseg-tiny-vit", device=CPU, seed=0)
    transformer = bundle.model.visual.transformer
    transformer.batch_first = False
    for block in transformer.resblocks:
        block.attn.batch_first = False
    with torch.no_grad():
        expected = encode_image_with_prompts(tiny_clip.model, images, mask, prompts)
        got = encode_image_with_prompts(bundle.model, images, mask, prompts)
        plain = bundle.model.encode_image(images)
        assert torch.allclose(got, expected, atol=1e-5)
        assert torch.equal(encode_image_with_prompts(bundle.model, images, _full(2, 64), prompts), plain)


def test_grad_checkpointing_path_matches(tiny_clip):
    bundle = build_clip("ovseg-tiny-vit", device=CPU, seed=0)
    bundle.model.set_grad_checkpointing(True)
    images = _images(2, 64)
    mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    mask[:, 8:40, 16:56] = True
    prompts = _prompts(tiny_clip, 2)
    expected = encode_image_with_prompts(tiny_clip.model, images, mask, prompts)
    got = encode_image_with_prompts(bundle.model, images, mask, prompts)
    assert torch.allclose(got, expected, atol=1e-6)
    got.sum().backward()
    assert prompts.prompts.grad is not None and prompts.prompts.grad.abs().sum() > 0


def test_prompt_tuning_step_trains_only_the_prompts():
    bundle = build_clip("ovseg-tiny-vit", device=CPU, seed=0)
    bundle.model.train()
    prompts = _prompts(bundle, 3)
    before = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    prompts_before = prompts.prompts.detach().clone()
    params = freeze_clip_for_prompt_tuning(bundle.model, prompts)
    assert params == [prompts.prompts] and not bundle.model.training
    optimizer = torch.optim.AdamW(params, lr=0.05, weight_decay=0.2)
    mask = torch.zeros(4, 64, 64, dtype=torch.bool)
    mask[:, 16:48, 16:48] = True
    bundle.prompts = prompts
    images = bundle.encode_image(_images(4, 64), mask)
    texts = bundle.encode_text(["a dog", "a cat", "a tree", "a car"])
    loss = -(images * texts).sum()
    loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in bundle.model.parameters())
    after = bundle.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(prompts.prompts.detach(), prompts_before)


def test_prompts_save_load_and_validation(tiny_clip, tmp_path):
    prompts = _prompts(tiny_clip, 2, seed=9)
    path = tmp_path / "mask_prompts.safetensors"
    save_mask_prompts(prompts, path)
    loaded = load_mask_prompts(path)
    assert torch.equal(loaded.prompts, prompts.prompts) and loaded.depth == 2
    first = path.read_bytes()
    for _ in range(5):  # same prompts, same bytes (DVC hashes them)
        save_mask_prompts(prompts, path)
        assert path.read_bytes() == first

    with pytest.raises(FileNotFoundError):
        load_mask_prompts(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="junk.safetensors"):
        load_mask_prompts(junk)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"prompts": torch.zeros(1, 2, 3)}, str(foreign))
    with pytest.raises(ValueError, match="not an ovseg mask prompts file"):
        load_mask_prompts(foreign)


def test_invalid_uses_are_refused(tiny_clip):
    with pytest.raises(ValueError, match="depth"):
        MaskPrompts.for_visual(tiny_clip.model, 6)
    with pytest.raises(ValueError, match="do not fit"):
        encode_image_with_prompts(tiny_clip.model, _images(1, 64), _full(1, 64), MaskPrompts(1, 49, 128))
    with pytest.raises(ValueError, match="crop masks"):
        encode_image_with_prompts(tiny_clip.model, _images(2, 64), _full(1, 64), _prompts(tiny_clip, 1))
    rn = build_clip("RN50", device=CPU, seed=0)
    with pytest.raises(TypeError, match="VisionTransformer"):
        MaskPrompts.for_visual(rn.model, 1)


def test_active_patch_dropout_is_refused(tmp_path):
    config = json.loads((CONFIG_DIR / "ovseg-tiny-vit.json").read_text())
    config["vision_cfg"]["patch_dropout"] = 0.5
    path = tmp_path / "dropout.json"
    path.write_text(json.dumps(config))
    bundle = build_clip(str(path), device=CPU, seed=0)
    prompts = _prompts(bundle, 1)
    with torch.no_grad():  # eval mode: patch dropout is off and MPT works
        encode_image_with_prompts(bundle.model, _images(1, 64), _full(1, 64), prompts)
    bundle.model.train()
    with pytest.raises(ValueError, match="patch dropout"):
        encode_image_with_prompts(bundle.model, _images(1, 64), _full(1, 64), prompts)
