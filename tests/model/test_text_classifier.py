"""model.text: prompt ensembles over templates and synonyms, checked against a manual computation."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from core.classnames import split_synonyms
from model.clip import CONFIG_FILE, build_clip, load_clip_folder, save_clip_folder
from model.text import TextClassifier, check_templates, load_templates

TEMPLATES = ["a photo of a {}.", "There is a {} in the scene"]


def _manual(bundle, class_name: str, templates: list[str]) -> torch.Tensor:
    rows = []
    with torch.no_grad():
        for synonym in [s.strip() for s in class_name.split(",")]:
            for template in templates:
                tokens = bundle.tokenizer([template.format(synonym)])
                rows.append(F.normalize(bundle.model.encode_text(tokens), dim=-1)[0])
    return F.normalize(torch.stack(rows).mean(dim=0), dim=0)


def test_synonym_and_template_average_matches_manual(tiny_clip):
    names = ["building, edifice", "dog", "traffic light"]
    embeddings = TextClassifier(tiny_clip, TEMPLATES)(names)
    assert embeddings.shape == (3, 128) and embeddings.dtype == torch.float32
    for row, name in zip(embeddings, names):
        assert torch.allclose(row, _manual(tiny_clip, name, TEMPLATES), atol=1e-5)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(3), atol=1e-6)
    building = _manual(tiny_clip, "building", TEMPLATES)
    assert not torch.allclose(embeddings[0], building, atol=1e-3)  # the synonym counts


def test_default_templates_are_the_vild_set(tiny_clip):
    templates = load_templates()
    assert len(templates) == 14 and len(set(templates)) == 14
    assert templates[0] == "a photo of a {}." and templates[-1] == "There is a large {} in the scene."
    classifier = TextClassifier(tiny_clip)
    assert classifier.templates == templates
    assert torch.allclose(classifier(["grass"])[0], _manual(tiny_clip, "grass", templates), atol=1e-5)


def test_each_synonym_is_encoded_once_in_one_call(tiny_clip):
    calls: list[int] = []

    class CountingBundle:
        embed_dim, device = tiny_clip.embed_dim, tiny_clip.device

        def encode_text(self, texts):
            calls.append(len(texts))
            return tiny_clip.encode_text(texts)

    classifier = TextClassifier(CountingBundle(), TEMPLATES, disk_cache=None)
    first = classifier(["building, edifice", "dog", "edifice"])
    assert calls == [3 * len(TEMPLATES)]  # building, dog, edifice once each
    assert torch.allclose(first[2], _manual(tiny_clip, "edifice", TEMPLATES), atol=1e-5)
    calls.clear()
    again = classifier(["dog", "cat, dog"])
    assert calls == [len(TEMPLATES)]  # only "cat" is new
    assert torch.equal(again[0], first[1])
    classifier.clear()
    classifier(["dog"])
    assert calls == [len(TEMPLATES)] * 2
    assert classifier([]).shape == (0, tiny_clip.embed_dim)


def test_a_synonym_does_not_depend_on_its_request(tiny_clip):
    alone = TextClassifier(tiny_clip, disk_cache=None)(["dog"])
    among = TextClassifier(tiny_clip, disk_cache=None)(["a large wooden chest of drawers", "dog", "sky, heavens"])
    assert torch.equal(alone[0], among[1])


def test_bad_names_and_templates():
    assert split_synonyms(" building ,edifice,, ") == ["building", "edifice"]
    with pytest.raises(ValueError, match="no words"):
        split_synonyms(" , ")
    with pytest.raises(ValueError, match="exactly one"):
        check_templates(["a photo of a {} and a {}"])
    with pytest.raises(ValueError, match="non-empty list"):
        check_templates("a photo of a {}")
    with pytest.raises(FileNotFoundError, match="vild"):
        load_templates("no-such-set")
    with pytest.raises(ValueError, match="letters, digits"):
        load_templates("../configs/ovseg-tiny-vit")  # never a file outside model/templates


def test_a_clip_folder_carries_its_template_set_to_every_classifier(tmp_path):
    bundle = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    save_clip_folder(bundle, tmp_path / "vild")
    assert "templates" not in json.loads((tmp_path / "vild" / CONFIG_FILE).read_text())  # the default adds nothing
    assert load_clip_folder(tmp_path / "vild", "cpu").templates == "vild"
    bundle.templates = "photo"
    save_clip_folder(bundle, tmp_path / "photo")
    loaded = load_clip_folder(tmp_path / "photo", "cpu")
    assert loaded.templates == "photo" and load_templates("photo") == ["a photo of a {}."]
    classifier = TextClassifier(loaded, disk_cache=None)
    assert classifier.templates == ["a photo of a {}."]
    assert torch.allclose(classifier(["grass"])[0], _manual(loaded, "grass", ["a photo of a {}."]), atol=1e-5)


def test_the_disk_cache_gives_back_exactly_what_encoding_gives_and_never_other_weights(tiny_clip, tmp_path):
    names = ["sky", "grass, lawn", "zebra"]
    cold = TextClassifier(tiny_clip, disk_cache=tmp_path)(names)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 1  # one request, one entry
    warm = TextClassifier(tiny_clip, disk_cache=tmp_path)
    warm._encode = None  # a hit must not encode
    assert torch.equal(warm(names), cold)
    assert torch.equal(TextClassifier(tiny_clip, disk_cache=None)(names), cold)
    other = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    with torch.no_grad():
        other.model.ln_final.bias.add_(0.05)  # one text weight differs: a miss, its own embeddings
    moved = TextClassifier(other, disk_cache=tmp_path)(names)
    assert not torch.allclose(moved, cold, atol=1e-4) and len(list(tmp_path.iterdir())) == 2
    image_only = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    with torch.no_grad():
        image_only.model.visual.proj.mul_(2.0)  # the image tower is not part of the key: a finetuned CLIP hits
    assert torch.equal(TextClassifier(image_only, disk_cache=tmp_path)(names), cold)
    assert len(list(tmp_path.iterdir())) == 2
    TextClassifier(tiny_clip, templates=["a {}."], disk_cache=tmp_path)(names)
    assert len(list(tmp_path.iterdir())) == 3  # other templates, another entry


def test_the_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    from model.text import CACHE_ENV, cache_dir

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "here"))
    assert cache_dir() == tmp_path / "here"
    monkeypatch.setenv(CACHE_ENV, "off")
    assert cache_dir() is None
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "ovseg" / "text_embeddings"
