"""Stage `text_prompts`: a new CLIP folder with learned prompts, its metrics and loss plot, same bytes twice."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from core import paths
from model.clip import TEXT_PROMPTS_FILE, load_clip_folder
from stages.text_prompts import main, run

PARAMS = {
    "n_ctx": 4,
    "epochs": 2,
    "batch_size": 4,
    "samples_per_class": None,
    "lr": 0.02,
    "momentum": 0.9,
    "weight_decay": 5.0e-4,
    "warmup_steps": 1,
    "crop_scale": [0.9, 1.0],
    "flip": True,
    "expand_ratio": 0.0,
    "num_workers": 0,
    "seed": 0,
    "threads": 1,
    "device": "cpu",
}


def params_file(path: Path, **overrides) -> Path:
    path.write_text(yaml.safe_dump({"text_prompts": {**PARAMS, **overrides}}))
    return path


@pytest.mark.slow
def test_the_stage_writes_a_prompted_clip_folder_deterministically(eval_inputs, tmp_path):
    params = params_file(tmp_path / "params.yaml")
    source = eval_inputs.artifacts / "clip_base"
    summary = run("base", params, world_path=eval_inputs.manifest, folders=(source, Path("out/clip_prompts")))
    folder = Path("out/clip_prompts")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*(p.name for p in source.iterdir()), TEXT_PROMPTS_FILE])
    assert os.path.samefile(folder / "open_clip_model.safetensors", source / "open_clip_model.safetensors")
    bundle = load_clip_folder(folder, "cpu")
    assert bundle.text_prompts is not None and bundle.text_prompts.n_ctx == 4
    metrics = json.loads(paths.stage_metrics("text_prompts_base").read_text())
    assert metrics["steps"] == summary["steps"] == 2 * (metrics["samples"] // 4) > 0
    assert metrics["classes"] > 0 and 0 <= metrics["final_accuracy"] <= 100
    assert paths.loss_plot("text_prompts_base").read_text().startswith("step,epoch,lr,accuracy,loss\n")
    assert json.loads((paths.TIMINGS / "text_prompts_base.json").read_text())["stage"] == "text_prompts_base"
    assert not Path(".checkpoints/text_prompts_base").exists()
    first = (folder / TEXT_PROMPTS_FILE).read_bytes()
    run("base", params, world_path=eval_inputs.manifest, folders=(source, Path("out/clip_prompts")))
    assert (folder / TEXT_PROMPTS_FILE).read_bytes() == first


def test_bad_params_and_missing_folders_are_named(tmp_path, capsys):
    assert main(["base", "--params", str(params_file(tmp_path / "p.yaml", lr_typo=1))]) == 2
    assert "unknown keys ['lr_typo']" in capsys.readouterr().err
    assert main(["base", "--params", str(params_file(tmp_path / "q.yaml"))]) == 2
    assert "artifacts/clip_base: CLIP folder not found" in capsys.readouterr().err
