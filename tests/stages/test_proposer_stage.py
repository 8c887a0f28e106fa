"""Stage `proposer` end to end on a tiny generated world, then `ovseg proposer-bench` and `ovseg propose`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from core import paths
from core.rle import decode_rle
from model.clip import build_clip, save_clip_folder
from model.proposer import load_proposer, read_proposer_manifest
from pipeline.datasets.proposal_table import PROPOSALS
from stages.cli import main as ovseg
from stages.proposer import ProposerStageConfig
from stages.proposer import main as proposer_main
from stages.world import build_world

TINY_WORLD = {
    "source": "demo",
    "seed": 2,
    "benchmarks": ["demo"],
    "demo": {"train_images": 24, "benchmark_images": 8, "image_size": 64, "preview_images": 2, "workers": 1},
}
TINY_PROPOSER = {
    "config": "proposer-tiny",
    "epochs": 2,
    "batch_size": 8,
    "lr": 2.0e-3,
    "weight_decay": 0.05,
    "warmup_steps": 2,
    "crop_size": 48,
    "scale_range": [0.8, 1.2],
    "hflip": True,
    "precision": "fp32",
    "mask_threshold": 0.4,
    "num_threads": 1,
    "device": "cpu",
    "seed": 0,
    "bench": {"benchmark": "demo", "iou_threshold": 0.5, "score_threshold": 0.3, "batch_size": 4},
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A repository-like folder: data/world (tiny), artifacts/clip_base (random tiny CLIP), params.yaml."""
    root = tmp_path_factory.mktemp("repo")
    build_world(TINY_WORLD, root / paths.WORLD)
    save_clip_folder(build_clip("ovseg-tiny-vit", device="cpu", seed=0), root / paths.CLIP_BASE)
    (root / "params.yaml").write_text(yaml.safe_dump({"proposer": TINY_PROPOSER}), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def trained(workspace: Path) -> Path:
    """Run the stage once in the workspace; every test below reads its outputs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workspace)
        assert proposer_main(["--params", "params.yaml"]) == 0
    return workspace


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"unknown keys \['bench.iou', 'epoch'\]"):
        ProposerStageConfig.from_params({**TINY_PROPOSER, "epoch": 3, "bench": {"iou": 0.5}})
    with pytest.raises(ValueError, match="missing 'config'"):
        ProposerStageConfig.from_params({k: v for k, v in TINY_PROPOSER.items() if k != "config"})
    with pytest.raises(ValueError, match="num_threads"):
        ProposerStageConfig.from_params({**TINY_PROPOSER, "num_threads": 0})
    with pytest.raises(ValueError, match="mask_threshold"):
        ProposerStageConfig.from_params({**TINY_PROPOSER, "mask_threshold": 1.5})


def test_stage_writes_proposer_metrics_plots_and_cleans_up(trained: Path) -> None:
    model = load_proposer(trained / paths.PROPOSER)
    assert model.config.text_dim == 128  # taken from the CLIP, not from proposer-tiny's 16
    seen = [c for c in json.loads((trained / paths.WORLD / "coco/classes.json").read_text()) if c["seen"]]
    assert model.vocabulary is not None and len(model.vocabulary.names) == len(seen)
    assert model.vocabulary.names[0].split(",")[0] == seen[0]["name"]
    extra = read_proposer_manifest(trained / paths.PROPOSER)["extra"]
    assert extra["mask_threshold"] == 0.4 and extra["train"]["epochs"] == 2

    metrics = json.loads((trained / paths.stage_metrics("proposer")).read_text())
    quality = metrics["quality"]
    assert metrics["steps"] == 2 * (24 // 8) and metrics["train_images"] == 24
    assert quality["images"] == 8 and quality["benchmark"] == "demo"
    assert set(quality["recall"]) == {"all", "seen", "unseen", "things", "stuff"}
    assert 0 <= quality["recall"]["all"] <= 100 and "mIoU" in quality["oracle"]
    assert "seconds" not in json.dumps(metrics)  # timings live apart from the tracked metrics
    timings = json.loads((trained / paths.TIMINGS / "proposer.json").read_text())
    assert timings["stage"] == "proposer" and timings["seconds"] > 0
    lines = (trained / paths.loss_plot("proposer")).read_text().splitlines()
    assert lines[0].startswith("step,epoch,lr,") and len(lines) == 1 + metrics["steps"]
    assert not (trained / ".checkpoints/proposer").exists()


def test_rerun_gives_the_same_metrics(trained: Path, tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(trained / "data", copy / "data")
    shutil.copytree(trained / paths.CLIP_BASE, copy / paths.CLIP_BASE)
    shutil.copy(trained / "params.yaml", copy / "params.yaml")
    monkeypatch.chdir(copy)
    assert proposer_main(["--params", "params.yaml", "--out", "artifacts/p2"]) == 0
    metrics = paths.stage_metrics("proposer")
    assert (copy / metrics).read_text() == (trained / metrics).read_text()


def test_proposer_bench_command(trained: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(trained)
    assert ovseg(["proposer-bench", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    stage = json.loads((trained / paths.stage_metrics("proposer")).read_text())["quality"]
    assert result["recall"] == stage["recall"] and result["oracle"] == stage["oracle"]
    assert result["settings"]["score_threshold"] == 0.3  # the stage's settings are the defaults
    assert result["images_per_s"] > 0 and result["per_class"]
    assert ovseg(["proposer-bench", "--limit", "2", "--threshold", "0.6"]) == 0
    out = capsys.readouterr().out
    assert "2 images" in out and "mask > 0.6" in out and "recall (all queries)" in out
    assert ovseg(["proposer-bench", "--proposer", "missing"]) == 2
    assert "missing/proposer_config.json: file not found" in capsys.readouterr().err


def test_propose_command_writes_sorted_readable_parquet(trained: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(trained)
    images = trained / paths.WORLD / "benchmarks/demo/images/validation"
    out = tmp_path / "props.parquet"
    assert ovseg(["propose", "--images", str(images), "--out", str(out), "--threshold", "0.3"]) == 0
    assert "proposals of 8 images" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.schema.equals(PROPOSALS)
    rows = table.to_pylist()
    assert rows and {r["file_name"] for r in rows} <= {p.name for p in images.iterdir()}
    assert [(r["file_name"], r["proposal_id"]) for r in rows] == sorted(
        (r["file_name"], r["proposal_id"]) for r in rows
    )
    for row in rows[:5]:
        mask = decode_rle({"size": [row["height"], row["width"]], "counts": row["mask_rle"]})
        assert mask.shape == (64, 64) and int(mask.sum()) == row["area"] > 0
        x, y, w, h = row["bbox"]
        ys, xs = np.nonzero(mask)
        assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        assert 0 <= row["class_prob"] <= row["score"] + 1e-6

    # open vocabulary: class names embedded with the CLIP
    out2 = tmp_path / "named.parquet"
    assert ovseg(["propose", "--images", str(images), "--out", str(out2), "--classes", "zebra, sky"]) == 0
    assert set(pq.read_table(out2).column("class_name").to_pylist()) <= {"zebra", "sky"}


def test_propose_errors_name_the_problem(trained: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(trained)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    assert ovseg(["propose", "--images", str(empty), "--out", str(tmp_path / "x.parquet")]) == 2
    assert f"{empty}: no images" in capsys.readouterr().err
    (empty / "broken.jpg").write_bytes(b"not a jpeg")
    assert ovseg(["propose", "--images", str(empty), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "broken.jpg: unreadable image" in capsys.readouterr().err
    assert ovseg(["propose", "--images", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "image folder not found" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
    images = trained / paths.WORLD / "benchmarks/demo/images/validation"
    assert (
        ovseg(["propose", "--images", str(images), "--out", str(tmp_path / "x.parquet"), "--classes", "cat,,dog"]) == 2
    )
    assert "non-empty class names" in capsys.readouterr().err
