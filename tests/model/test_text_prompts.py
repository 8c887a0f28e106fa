"""model.text_prompts: the learned-prompt encoder is encode_text with the context swapped in, trains only
the context, and fits only the text tower it was learned on; CLIP folders carry the prompts."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from model.clip import TEXT_PROMPTS_FILE, build_clip, derive_clip_folder, load_clip_folder, save_clip_folder
from model.text import TextClassifier
from model.text_prompts import (
    TextPrompts,
    encode_with_text_prompts,
    freeze_clip_for_text_prompts,
    load_text_prompts,
    prompted_class_embeddings,
    save_text_prompts,
    text_fingerprint,
)

NAMES = ["zebra", "traffic light", "wall-concrete", "sky"]


def _prompts(bundle, n_ctx=16, seed=0) -> TextPrompts:
    return TextPrompts.for_clip(bundle.model, n_ctx, generator=torch.Generator().manual_seed(seed))


def test_shapes_and_initialisation(tiny_clip):
    prompts = _prompts(tiny_clip)
    assert prompts.ctx.shape == (16, 128)
    assert 0.015 < float(prompts.ctx.detach().std()) < 0.025 and abs(float(prompts.ctx.detach().mean())) < 0.005
    with torch.no_grad():
        features = encode_with_text_prompts(tiny_clip.model, tiny_clip.tokenizer, prompts, NAMES)
    assert features.shape == (len(NAMES), tiny_clip.embed_dim)


@pytest.mark.parametrize("prefix", ["a photo of a", "there is a large bright picture of the small"])
def test_context_set_to_a_real_prefix_gives_encode_text_of_that_text(tiny_clip, prefix):
    model, tokenizer = tiny_clip.model, tiny_clip.tokenizer
    prefix_tokens = tokenizer([prefix])[0]
    n_ctx = int((prefix_tokens != 0).sum()) - 2  # without SOS and EOT
    prompts = TextPrompts(n_ctx, model.token_embedding.embedding_dim)
    with torch.no_grad():
        prompts.ctx.copy_(model.token_embedding(prefix_tokens[1 : 1 + n_ctx]))
        learned = encode_with_text_prompts(model, tokenizer, prompts, NAMES)
        reference = model.encode_text(tokenizer([f"{prefix} {name}." for name in NAMES]))
    # The padding after EOT is cut off (the causal mask hides it from EOT), so the sums may differ in the last bits.
    torch.testing.assert_close(learned, reference, rtol=0, atol=1e-5)
    assert torch.equal(learned.argmax(dim=1), reference.argmax(dim=1))


def test_frozen_towers_get_no_gradient_and_the_context_does(tiny_clip):
    bundle = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    prompts = _prompts(bundle)
    params = freeze_clip_for_text_prompts(bundle.model, prompts)
    assert params == [prompts.ctx]
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    image = bundle.encode_image(images)
    text = prompted_class_embeddings(bundle.model, bundle.tokenizer, prompts, ["zebra, horse", "sky", "lemon"])
    F.cross_entropy(100 * image @ text.T, torch.tensor([0, 1, 2])).backward()
    assert all(p.grad is None for p in bundle.model.parameters())
    assert prompts.ctx.grad is not None and float(prompts.ctx.grad.abs().sum()) > 0


def test_class_embeddings_average_synonyms_like_the_text_classifier(tiny_clip):
    prompts = _prompts(tiny_clip)
    bundle = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    bundle.text_prompts = prompts
    names = ["zebra, horse", "sky", "grass, lawn, turf"]
    with torch.no_grad():
        trained = prompted_class_embeddings(bundle.model, bundle.tokenizer, prompts, names)
    served = TextClassifier(bundle)(names)
    assert torch.allclose(trained, served, atol=1e-6)
    templated = TextClassifier(bundle, learned_prompts=False)(names)
    assert torch.equal(templated, TextClassifier(build_clip("ovseg-tiny-vit", device="cpu", seed=0))(names))
    assert not torch.allclose(templated, served, atol=1e-3)


def test_file_round_trip_and_fingerprint_refuses_another_text_tower(tiny_clip, tmp_path):
    prompts = _prompts(tiny_clip, n_ctx=4)
    path = tmp_path / TEXT_PROMPTS_FILE
    save_text_prompts(prompts, path, tiny_clip.model)
    first = path.read_bytes()
    save_text_prompts(prompts, path, tiny_clip.model)
    assert path.read_bytes() == first
    loaded = load_text_prompts(path, tiny_clip.model)
    assert torch.equal(loaded.ctx, prompts.ctx.detach())

    other = build_clip("ovseg-tiny-vit", device="cpu", seed=1)
    assert text_fingerprint(other.model) != text_fingerprint(tiny_clip.model)
    with pytest.raises(ValueError, match=rf"{TEXT_PROMPTS_FILE}: .*another CLIP text tower"):
        load_text_prompts(path, other.model)
    # The image tower does not count: a CLIP finetuned with its text tower locked keeps the fingerprint.
    finetuned = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    with torch.no_grad():
        finetuned.model.visual.proj.add_(1.0)
    assert text_fingerprint(finetuned.model) == text_fingerprint(tiny_clip.model)
    with torch.no_grad():
        finetuned.model.ln_final.bias.add_(1e-3)
    assert text_fingerprint(finetuned.model) != text_fingerprint(tiny_clip.model)

    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="bad.safetensors: not a readable"):
        load_text_prompts(tmp_path / "bad.safetensors", tiny_clip.model)


def test_derived_folder_links_the_source_and_loads_with_its_prompts(tiny_clip, tmp_path):
    source = save_clip_folder(tiny_clip, tmp_path / "clip_base")
    prompts = _prompts(tiny_clip)
    out = derive_clip_folder(source, tmp_path / "clip_prompts", text_prompts=prompts, clip_model=tiny_clip.model)
    assert sorted(p.name for p in out.iterdir()) == sorted([*(p.name for p in source.iterdir()), TEXT_PROMPTS_FILE])
    for path in source.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes()
        assert os.path.samefile(out / path.name, path)  # hard-linked on one file system
    bundle = load_clip_folder(out, "cpu")
    assert bundle.text_prompts is not None and torch.equal(bundle.text_prompts.ctx, prompts.ctx.detach())
    assert load_clip_folder(source, "cpu").text_prompts is None
    # save_clip_folder keeps them too
    again = load_clip_folder(save_clip_folder(bundle, tmp_path / "again"), "cpu")
    assert torch.equal(again.text_prompts.ctx, prompts.ctx.detach())


def test_prompts_on_another_clip_folder_are_refused(tiny_clip, tmp_path):
    other = build_clip("ovseg-tiny-vit", device="cpu", seed=1)
    folder = save_clip_folder(other, tmp_path / "other")
    save_text_prompts(_prompts(tiny_clip), folder / TEXT_PROMPTS_FILE, tiny_clip.model)
    with pytest.raises(ValueError, match="another CLIP text tower"):
        load_clip_folder(folder, "cpu")
