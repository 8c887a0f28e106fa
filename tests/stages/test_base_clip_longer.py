"""Stage base_clip_longer: finetune's step budget, and the folder, metrics, loss plot and timing it writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from core import paths
from core.rle import encode_rle
from model.clip import build_clip, load_clip_folder, save_clip_folder
from pipeline.datasets.manifest import load_world
from stages.base_clip_longer import LOSS_PLOT, METRICS, finetune_budget, run
from stages.world import main as world_main

REPO = Path(__file__).resolve().parents[2]


def test_the_budget_is_finetunes_step_count():
    finetune = yaml.safe_load((REPO / "params.yaml").read_text())["finetune"]
    # The committed demo run: 7,135 mined pairs, 3 epochs of batch 128 -> metrics/finetune.json says 165 steps.
    assert finetune_budget({**finetune, "epochs": 3, "batch_size": 128}, 7135) == (165, 128)
    assert finetune_budget({**finetune, "epochs": 2, "batch_size": 16}, 47) == (4, 16)  # partial batches dropped
    with pytest.raises(ValueError, match=r"unknown keys \['epochz'\]"):
        finetune_budget({**finetune, "epochz": 2}, 100)


def _pairs(world_manifest: Path, out: Path, count: int) -> None:
    """``count`` mined-pair rows in data/pairs' schema over the world's training images."""
    world = load_world(world_manifest)
    files = sorted(p.name for p in world.images_dir.glob("*.jpg"))
    rows = []
    for i in range(count):
        mask = np.zeros((64, 64), bool)
        mask[(i % 4) * 16 : (i % 4) * 16 + 16, :32] = True
        rle = encode_rle(mask)
        rows.append(
            {
                "image_id": i,
                "file_name": files[i % len(files)],
                "noun": ["zebra", "sky"][i % 2],
                "mask_rle": rle["counts"],
                "height": 64,
                "width": 64,
                "similarity": 0.5 - i / 100,
            }
        )
    out.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), out / "part-00000.parquet")


@pytest.mark.slow
def test_the_stage_trains_finetunes_steps_and_writes_its_outputs(tmp_path):
    world_params = {
        "source": "demo",
        "seed": 3,
        "benchmarks": ["demo"],
        "demo": {"train_images": 16, "benchmark_images": 2, "image_size": 64, "preview_images": 1, "workers": 1},
    }
    (tmp_path / "world.yaml").write_text(yaml.safe_dump({"data": world_params}))
    assert world_main(["--params", "world.yaml", "--out", str(paths.WORLD)]) == 0
    manifest = paths.WORLD_MANIFEST
    _pairs(manifest, paths.PAIRS, 21)
    base = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    save_clip_folder(base, "artifacts/clip_base")
    section = {
        "lr": 1e-3,
        "warmup_steps": 1,
        "weight_decay": 0.1,
        "crop_scale": [0.5, 1.0],
        "image_side": 64,
        "seed": 0,
        "device": "cpu",
    }
    finetune = {"epochs": 3, "batch_size": 8, "max_pairs": 17, "device": "cpu"}  # 17 pairs: 2 steps an epoch

    summary = run(section, finetune, paths.CLIP_LONGER, manifest=manifest)

    assert json.loads(METRICS.read_text()) == {k: summary[k] for k in json.loads(METRICS.read_text())}
    assert (summary["finetune_pairs"], summary["batch_size"], summary["steps"]) == (17, 8, 6)
    assert summary["epochs"] == 3  # 16 images: two batches of 8 an epoch
    with open(LOSS_PLOT) as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert json.loads((paths.TIMINGS / "base_clip_longer.json").read_text())["stage"] == "base_clip_longer"
    assert not Path(".checkpoints/base_clip_longer").exists()
    trained = load_clip_folder("artifacts/clip_longer", "cpu")
    before, after = base.model.state_dict(), trained.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("visual.") for k in changed) and "token_embedding.weight" in changed  # both towers
