"""model.clip: building from names/configs/files/folders, saving and reloading, offline errors."""

from __future__ import annotations

import copy
import json

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from model.clip import CONFIG_DIR, build_clip, load_clip_folder, save_clip_folder
from model.mpt import MaskPrompts

# Low-precision runs: bf16 asked for explicitly, or auto resolved on a bf16 CPU.
pytestmark = pytest.mark.usefixtures("native_numerics")

CPU = torch.device("cpu")
TINY = "ovseg-tiny-vit"


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


class Payload:
    """An arbitrary pickled object: weights_only loading must refuse it."""


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_tiny_config_builds_the_demo_architecture(tiny_clip):
    visual = tiny_clip.model.visual
    assert tiny_clip.embed_dim == 128 and tiny_clip.image_size == 64
    assert visual.grid_size == (8, 8) and visual.conv1.out_channels == 128
    assert len(visual.transformer.resblocks) == 4
    assert visual.transformer.resblocks[0].attn.num_heads == 4
    assert visual.transformer.resblocks[0].mlp.c_fc.out_features == 512
    assert tiny_clip.model.context_length == 32 and len(tiny_clip.model.transformer.resblocks) == 4
    assert tiny_clip.tokenizer(["a dog"]).shape == (1, 32)
    assert not tiny_clip.model.training
    assert tiny_clip.mean.shape == (3,) and tiny_clip.std.dtype == torch.float32


def test_config_name_path_and_seed_resolve_to_the_same_model(tiny_clip):
    by_path = build_clip("model/configs/ovseg-tiny-vit.json", device=CPU, seed=0)
    by_abs_path = build_clip(str(CONFIG_DIR / "ovseg-tiny-vit.json"), device=CPU, seed=0)
    _assert_same_weights(tiny_clip.model, by_path.model)
    _assert_same_weights(tiny_clip.model, by_abs_path.model)
    other_seed = build_clip(TINY, device=CPU, seed=1)
    assert not torch.equal(other_seed.model.visual.conv1.weight, tiny_clip.model.visual.conv1.weight)


def test_embeddings_are_normalised(tiny_clip, images):
    with torch.no_grad():
        text = tiny_clip.encode_text(["a photo of a dog.", "a cat"])
        image = tiny_clip.encode_image(images)
    assert text.shape == (2, 128) and image.shape == (3, 128)
    assert torch.allclose(text.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(image.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert tiny_clip.encode_text([]).shape == (0, 128)


def test_save_load_round_trip_and_open_clip_alone_loads_the_folder(tiny_clip, images, tmp_path):
    folder = save_clip_folder(tiny_clip, tmp_path / "clip")
    assert sorted(p.name for p in folder.iterdir()) == ["open_clip_config.json", "open_clip_model.safetensors"]
    config = json.loads((folder / "open_clip_config.json").read_text())
    assert config["model_cfg"] == tiny_clip.model_cfg and config["preprocess_cfg"]["size"] == 64

    loaded = load_clip_folder(folder, CPU)
    _assert_same_weights(tiny_clip.model, loaded.model)
    assert loaded.preprocess_cfg == json.loads(json.dumps(tiny_clip.preprocess_cfg))
    assert loaded.prompts is None
    texts = ["a photo of a dog.", "grass"]
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(images), tiny_clip.encode_image(images))
        assert torch.equal(loaded.encode_text(texts), tiny_clip.encode_text(texts))

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.encode_image(images), tiny_clip.model.encode_image(images))
        assert torch.equal(model.encode_text(tokenizer(texts)), tiny_clip.model.encode_text(tiny_clip.tokenize(texts)))
    assert list(model.visual.preprocess_cfg["mean"]) == list(tiny_clip.preprocess_cfg["mean"])
    assert tuple(model.visual.preprocess_cfg["size"]) == (64, 64) and preprocess is not None


def test_saving_again_replaces_the_folder_whole(tiny_clip, tmp_path):
    folder = tmp_path / "clip"
    with_prompts = build_clip(TINY, device=CPU, seed=0)
    with_prompts.prompts = MaskPrompts.for_visual(with_prompts.model, depth=2)
    save_clip_folder(with_prompts, folder)
    assert (folder / "mask_prompts.safetensors").is_file()
    save_clip_folder(tiny_clip, folder)
    assert not (folder / "mask_prompts.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]  # no temp or old folders left


def test_prompts_round_trip_through_the_folder(tmp_path, images):
    bundle = build_clip(TINY, device=CPU, seed=0)
    bundle.prompts = MaskPrompts.for_visual(bundle.model, depth=3, generator=torch.Generator().manual_seed(5))
    save_clip_folder(bundle, tmp_path / "mpt")
    loaded = load_clip_folder(tmp_path / "mpt", CPU)
    assert torch.equal(loaded.prompts.prompts, bundle.prompts.prompts)
    masks = torch.zeros(3, 64, 64, dtype=torch.bool)
    masks[:, 10:30, 5:50] = True
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(images, masks), bundle.encode_image(images, masks))
        assert not torch.allclose(loaded.encode_image(images, masks), loaded.encode_image(images), atol=1e-3)


def test_incompatible_prompts_in_a_folder_are_refused(tiny_clip, tmp_path):
    bundle = build_clip(TINY, device=CPU, seed=0)
    bundle.prompts = MaskPrompts(depth=2, num_patches=49, width=128)
    save_clip_folder(bundle, tmp_path / "bad")
    with pytest.raises(ValueError, match="mask_prompts.safetensors"):
        load_clip_folder(tmp_path / "bad", CPU)


def test_vit_b16_checkpoint_file_loads_the_same_weights(tmp_path):
    torch.manual_seed(3)
    reference = open_clip.create_model("ViT-B-16")
    path = tmp_path / "vit_b16.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    bundle = build_clip("ViT-B-16", str(path), device=CPU)
    _assert_same_weights(reference, bundle.model)
    assert bundle.image_size == 224 and bundle.embed_dim == 512
    # built without random init: the computed causal mask is rebuilt, and the towers give the reference's outputs
    assert torch.equal(bundle.model.attn_mask, reference.attn_mask)
    tokens, image = open_clip.tokenize(["a photo of a dog."]), torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(bundle.model.encode_text(tokens), reference.eval().encode_text(tokens))
        assert torch.equal(bundle.model.encode_image(image), reference.encode_image(image))


def test_open_clip_loads_a_checkpoint_through_the_models_own_load_state_dict(tiny_clip, tmp_path):
    """model.clip builds a checkpoint's CLIP on the meta device and makes open_clip's loader assign the
    tensors it reads by replacing the instance's ``load_state_dict`` (``_clip_from_checkpoint``). That holds
    only while ``open_clip.load_checkpoint`` hands the whole converted state dict to that method: this
    fails on an open_clip release that loads otherwise (pyproject pins the tested releases)."""
    path = save_clip_folder(tiny_clip, tmp_path / "clip") / "open_clip_model.safetensors"
    with torch.device("meta"):
        clip = open_clip.CLIP(**copy.deepcopy(tiny_clip.model_cfg))
    calls = []
    clip.load_state_dict = lambda state_dict, strict=True: calls.append((state_dict, strict))
    open_clip.load_checkpoint(clip, str(path), strict=True, weights_only=True, device="cpu")
    assert len(calls) == 1 and calls[0][1] is True
    state_dict = calls[0][0]
    assert state_dict.keys() == tiny_clip.model.state_dict().keys()
    for name, tensor in tiny_clip.model.state_dict().items():
        assert not state_dict[name].is_meta and torch.equal(state_dict[name], tensor), name
    # and the one buffer computed at construction, not stored, is still the causal mask that is rebuilt
    assert {name for name, _ in clip.named_buffers()} - clip.state_dict().keys() == {"attn_mask"}


def test_a_checkpoints_clip_holds_the_loaded_tensors_themselves(tiny_clip, tmp_path, monkeypatch):
    """Built on the meta device, the CLIP takes the tensors read from the file as its parameters (no copy)."""
    path = save_clip_folder(tiny_clip, tmp_path / "clip") / "open_clip_model.safetensors"
    read = []

    def reading(*args, **kwargs):
        read.append(load_state_dict(*args, **kwargs))
        return read[-1]

    load_state_dict = open_clip.factory.load_state_dict
    monkeypatch.setattr(open_clip.factory, "load_state_dict", reading)
    clip = build_clip(TINY, str(path), device=CPU).model
    assert len(read) == 1
    for name, parameter in clip.named_parameters():
        assert not parameter.is_meta, name
        assert parameter.data_ptr() == read[0][name].data_ptr(), name


def test_a_loaded_clip_is_float32_trainable_and_converted_after_loading(tiny_clip, tmp_path):
    half = tmp_path / "half.safetensors"  # as OpenAI's checkpoints are stored
    save_file({k: v.half().contiguous() for k, v in tiny_clip.model.state_dict().items()}, str(half))
    loaded = build_clip(TINY, str(half), device=CPU).model
    for name, tensor in loaded.state_dict().items():
        assert tensor.dtype == torch.float32, name
        assert torch.equal(tensor, tiny_clip.model.state_dict()[name].half().float()), name
    assert all(p.requires_grad and not p.is_meta for p in loaded.parameters())
    low = build_clip(TINY, str(half), device=CPU, precision="bf16").model
    reference = build_clip(TINY, str(half), device=CPU).model
    open_clip.convert_weights_to_lp(reference, dtype=torch.bfloat16)
    _assert_same_weights(reference, low)


def test_torch_checkpoints_load_with_weights_only(tiny_clip, tmp_path):
    plain = tmp_path / "tiny_clip.pt"
    torch.save({"state_dict": tiny_clip.model.state_dict()}, plain)
    _assert_same_weights(tiny_clip.model, build_clip(TINY, str(plain), device=CPU).model)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"state_dict": tiny_clip.model.state_dict(), "extra": Payload()}, unsafe)
    with pytest.raises(ValueError, match="unsafe.pt"):
        build_clip(TINY, str(unsafe), device=CPU)


def test_image_size_override_interpolates_loaded_positions(tiny_clip, tmp_path):
    folder = save_clip_folder(tiny_clip, tmp_path / "clip")
    bundle = build_clip(TINY, str(folder / "open_clip_model.safetensors"), device=CPU, image_size=32)
    assert bundle.image_size == 32 and bundle.preprocess_cfg["size"] == 32
    assert bundle.model.visual.positional_embedding.shape == (4 * 4 + 1, 128)
    with torch.no_grad():
        assert bundle.encode_image(torch.randn(2, 3, 32, 32)).shape == (2, 128)


def test_low_precision_keeps_float32_outputs(images):
    bundle = build_clip(TINY, device=CPU, precision="bf16", seed=0)
    assert bundle.input_dtype == torch.bfloat16
    with torch.no_grad():
        out = bundle.encode_image(images)
    assert out.dtype == torch.float32 and torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-3)


def test_missing_tag_weights_raise_an_offline_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not available offline") as info:
        build_clip("ViT-B-16", "openai", device=CPU, cache_dir=tmp_path)
    assert "pretrained=" in str(info.value) and "local-dir:" in str(info.value)


@pytest.mark.parametrize(
    ("model", "pretrained", "error", "pattern"),
    [
        ("no-such-model", "", ValueError, "unknown CLIP model"),
        ("missing/config.json", "", FileNotFoundError, "config file not found"),
        (TINY, "no-such-tag-or-file", FileNotFoundError, "neither an existing checkpoint"),
        ("ViT-B-16", "no-such-tag", FileNotFoundError, "tags:"),
    ],
)
def test_bad_model_or_weights_names(model, pretrained, error, pattern):
    with pytest.raises(error, match=pattern):
        build_clip(model, pretrained, device=CPU)


def test_bad_folders_configs_and_options(tiny_clip, tmp_path):
    folder = save_clip_folder(tiny_clip, tmp_path / "clip")
    with pytest.raises(ValueError, match="cannot be combined"):
        build_clip(f"local-dir:{folder}", "x.safetensors", device=CPU)
    (folder / "open_clip_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_clip_folder(folder, CPU)
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        load_clip_folder(tmp_path / "nowhere", CPU)
    with pytest.raises(ValueError, match="precision"):
        build_clip(TINY, device=CPU, precision="fp8")

    config = json.loads((CONFIG_DIR / "ovseg-tiny-vit.json").read_text())
    config["embed_dim"] = 64
    other = tmp_path / "other.json"
    other.write_text(json.dumps(config))
    weights = tmp_path / "tiny_clip.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_clip.model.state_dict().items()}, str(weights))
    with pytest.raises(ValueError, match="tiny_clip.safetensors"):
        build_clip(str(other), str(weights), device=CPU)

    config["text_cfg"]["hf_model_name"] = "bert-base-uncased"
    other.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="Hugging Face text tower"):
        build_clip(str(other), device=CPU)
    broken = tmp_path / "broken.json"
    broken.write_text('{"embed_dim": 8}')
    with pytest.raises(ValueError, match="lacks vision_cfg, text_cfg"):
        build_clip(str(broken), device=CPU)


def test_bundle_moves_between_devices(tiny_clip):
    bundle = build_clip(TINY, device=CPU, seed=0)
    bundle.prompts = MaskPrompts.for_visual(bundle.model, depth=1)
    assert bundle.to(torch.device("cpu")) is bundle
    assert bundle.mean.device == bundle.device == bundle.prompts.prompts.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_build_matches_cpu(tiny_clip, images):
    bundle = build_clip(TINY, device="cuda", seed=0)
    _assert_same_weights(tiny_clip.model, bundle.model)
    with torch.no_grad():
        assert torch.allclose(bundle.encode_image(images).cpu(), tiny_clip.encode_image(images), atol=1e-4)


def _timm_config(tmp_path, timm_name: str):
    config = {
        "embed_dim": 48,
        "vision_cfg": {
            "timm_model_name": timm_name,
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "mlp",
            "image_size": 64,
        },
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    path = tmp_path / f"{timm_name}.json"
    path.write_text(json.dumps(config))
    return str(path)


def test_timm_convnext_towers_build_save_and_load(tmp_path):
    bundle = build_clip(_timm_config(tmp_path, "convnext_atto"), device="cpu", seed=0)
    assert bundle.input_dtype == torch.float32
    image = torch.randn(1, 3, 64, 64)
    folder = save_clip_folder(bundle, tmp_path / "clip")
    again = load_clip_folder(folder, "cpu")
    assert torch.equal(again.encode_image(image), bundle.encode_image(image))


def test_other_timm_towers_are_refused(tmp_path):
    with pytest.raises(ValueError, match="timm image tower other than ConvNeXt"):
        build_clip(_timm_config(tmp_path, "resnet18"), device="cpu")
