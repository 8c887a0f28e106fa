"""Shared inputs of the stage tests: a tiny demo world with tiny random models.

``eval_inputs`` is built once per session and must not be written to; tests run
the stages from their own ``tmp_path`` (outputs are relative to the working
directory) and point them at these inputs with ``--world``/``--artifacts``/``--params``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from core import paths
from model.clip import build_clip, save_clip_folder
from model.mpt import MaskPrompts
from model.proposer import build_proposer, load_proposer_config, save_proposer
from stages.world import main as world_main

TINY_WORLD = {
    "source": "demo",
    "seed": 3,
    "benchmarks": ["demo", "voc20"],
    "demo": {
        "train_images": 4,
        "benchmark_images": 4,
        "extra_benchmark_images": 3,
        "image_size": 64,
        "preview_images": 1,
        "workers": 1,
    },
}
EVALUATE_PARAMS = {
    "lam": 0.7,
    "lam_seen": None,
    "lam_unseen": None,
    "mask_threshold": 0.4,
    "expand_ratio": 0.0,
    "batch_size": 3,
    "clip_batch_size": 64,
    "short_side": None,
    "max_images": None,
    "overlay_images": 2,
    "device": "cpu",
    "threads": 1,
}


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path, monkeypatch):
    """Stages write relative to the working directory (metrics/timings/ among others):
    every stage test runs from its own folder so that none writes into the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def eval_inputs(tmp_path_factory) -> SimpleNamespace:
    """``root`` with ``data/world`` (4 benchmark images of 64 px), ``artifacts/clip_base``,
    ``artifacts/clip_mpt`` (random mask prompts), ``artifacts/proposer`` (proposer-tiny) and
    ``params.yaml`` (the ``evaluate`` section above)."""
    root = tmp_path_factory.mktemp("eval_inputs")
    (root / "world_params.yaml").write_text(yaml.safe_dump({"data": TINY_WORLD}))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # the stage's timing goes to ./metrics/timings/
        assert world_main(["--params", "world_params.yaml", "--out", str(paths.WORLD)]) == 0
    artifacts = root / paths.ARTIFACTS
    clip = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    save_clip_folder(clip, artifacts / "clip_base")
    clip.prompts = MaskPrompts.for_visual(clip.model.visual, 2, generator=torch.Generator().manual_seed(0))
    save_clip_folder(clip, artifacts / "clip_mpt")
    config = dataclasses.replace(load_proposer_config("proposer-tiny"), text_dim=clip.embed_dim)
    torch.manual_seed(0)
    save_proposer(build_proposer(config), artifacts / "proposer")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"evaluate": EVALUATE_PARAMS}))
    return SimpleNamespace(
        root=root,
        manifest=root / paths.WORLD_MANIFEST,
        artifacts=artifacts,
        params=params,
        benchmark_images=sorted((root / paths.WORLD / "benchmarks/demo/images/validation").glob("*.jpg")),
    )


@pytest.fixture
def make_params(tmp_path):
    """A function writing a params file with the ``evaluate`` section above, overrides applied."""

    def make(**overrides) -> Path:
        path = tmp_path / "params_override.yaml"
        path.write_text(yaml.safe_dump({"evaluate": {**EVALUATE_PARAMS, **overrides}}))
        return path

    return make
