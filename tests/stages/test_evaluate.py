"""Stage `evaluate` (and `report` on its real outputs) on a tiny world with tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
import yaml
from PIL import Image

from core import paths
from model.clip import build_clip, save_clip_folder
from model.oracle import gt_segments
from pipeline.datasets.manifest import load_world
from pipeline.datasets.proposal_table import PROPOSALS, proposal_rows, write_table
from stages.evaluate import main as evaluate_main
from stages.report import main as report_main
from stages.world import build_world
from tests.stages.test_propose import inputs_args
from tests.stages.test_world import _coco_tree  # the real-layout COCO fixture tree

FIGURES = {"mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "fwIoU", "mACC", "pACC", "per_class"}


def evaluate(inputs, variant: str, params: Path | None = None, *extra: str) -> int:
    return evaluate_main(["--variant", *variant.split(), *inputs_args(inputs, params), *extra])


def record(variant: str) -> dict:
    return json.loads(Path(f"metrics/eval/{variant}/demo.json").read_text())


def test_evaluate_writes_metrics_pictures_and_timing(eval_inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert evaluate(eval_inputs, "base") == 0
    printed = capsys.readouterr().out
    assert "evaluate base/demo: mIoU" in printed and "images/s" in printed
    result = record("base")
    assert set(result) >= FIGURES
    assert result["images"] == 4 and result["classes"] == 44 and len(result["per_class"]) == 44
    assert result["classes_seen"] + result["classes_unseen"] == 44 and result["classes_unseen"] > 0
    assert result["variant"] == "base" and result["mode"] == "two_stage" and result["settings"]["lam"] == 0.7
    assert 0.0 <= result["mIoU"] <= 100.0
    scored = [v for v in result["per_class"].values() if v is not None]
    assert result["mIoU"] == pytest.approx(sum(scored) / len(scored), abs=0.01)
    assert "seconds" not in json.dumps(result)  # timings stay out of the DVC-tracked metrics
    for picture in ("demo_per_class.png", "demo_overlays.png"):
        with Image.open(paths.EVAL_PLOTS / "base" / picture) as image:
            assert image.format == "PNG" and image.width > 300
    timing = json.loads((paths.TIMINGS / "evaluate_base_demo.json").read_text())
    assert timing["images"] == 4 and timing["images_per_s"] > 0


def test_one_process_evaluates_every_benchmark_of_the_params_as_separate_runs_do(eval_inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "both.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "evaluate": yaml.safe_load(eval_inputs.params.read_text())["evaluate"],
                "data": {"benchmarks": ["voc20", "demo"]},
            }
        )
    )
    args = [
        "--variant",
        "base",
        "oracle",
        "--world",
        str(eval_inputs.manifest),
        "--artifacts",
        str(eval_inputs.artifacts),
        "--params",
        str(params),
    ]
    assert evaluate_main(args) == 0  # no --benchmark: data.benchmarks
    together = {path: path.read_bytes() for path in sorted(paths.EVAL_METRICS.glob("*/*.json"))}
    assert sorted(str(path) for path in together) == [
        f"metrics/eval/{v}/{b}.json" for v in ("base", "oracle") for b in ("demo", "voc20")
    ]
    for benchmark in ("demo", "voc20"):
        assert evaluate_main([*args, "--benchmark", benchmark]) == 0
    assert {path: path.read_bytes() for path in together} == together
    assert json.loads((paths.EVAL_METRICS / "base/voc20.json").read_text())["classes"] == 20


def test_oracle_masks_beat_random_classifiers_and_report_lists_every_run(eval_inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert evaluate(eval_inputs, "base mpt oracle gt_masks_base") == 0  # one process
    oracle = record("oracle")
    assert oracle["mode"] == "oracle"
    for variant in ("base", "mpt"):
        assert oracle["mIoU"] >= record(variant)["mIoU"]
    # Ground-truth segments keep the ground truth's ignore pixels: every scored pixel gets some class.
    assert record("gt_masks_base")["pixels"] == oracle["pixels"]
    assert report_main([]) == 0
    report = paths.RESULTS_REPORT.read_text()
    for row in ("| `base` |", "| `mpt` |", "| `oracle` |", "| `gt_masks_base` |"):
        assert row in report
    assert report.index("| `mpt` |") < report.index("## Diagnostics") < report.index("| `oracle` |")
    assert Path("reports/miou.csv").read_text().splitlines()[0] == "run,variant,benchmark,mIoU,mIoU_seen,mIoU_unseen"


def test_evaluation_is_deterministic(eval_inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert evaluate(eval_inputs, "mpt") == 0
    first = (paths.EVAL_METRICS / "mpt/demo.json").read_bytes()
    assert evaluate(eval_inputs, "mpt") == 0
    assert (paths.EVAL_METRICS / "mpt/demo.json").read_bytes() == first


def test_max_images_and_per_class_exponents(eval_inputs, tmp_path, monkeypatch, make_params):
    monkeypatch.chdir(tmp_path)
    assert evaluate(eval_inputs, "base", make_params(max_images=2, lam_seen=0.3, lam_unseen=1.0)) == 0
    result = record("base")
    assert result["images"] == 2 and result["settings"]["max_images"] == 2
    assert result["settings"]["lam_unseen"] == 1.0


def test_clear_errors(eval_inputs, tmp_path, monkeypatch, capsys, make_params):
    monkeypatch.chdir(tmp_path)
    assert evaluate(eval_inputs, "base ft") == 2  # every folder is checked before any work
    assert "clip_ft: CLIP folder of variant 'ft' not found" in capsys.readouterr().err
    assert evaluate(eval_inputs, "base oracle base") == 2
    assert "a variant is listed twice" in capsys.readouterr().err
    assert evaluate(eval_inputs, "base", make_params(threads=0)) == 2
    assert "evaluate.threads must be null or >= 1" in capsys.readouterr().err
    assert evaluate(eval_inputs, "base", make_params(lamda=0.5)) == 2
    assert "unknown keys ['lamda']" in capsys.readouterr().err
    assert evaluate(eval_inputs, "base", make_params(lam=1.5)) == 2
    assert "evaluate.lam must lie in [0, 1]" in capsys.readouterr().err
    assert (
        evaluate_main(
            [
                "--variant",
                "base",
                "--benchmark",
                "ade150",
                "--world",
                str(eval_inputs.manifest),
                "--artifacts",
                str(eval_inputs.artifacts),
                "--params",
                str(eval_inputs.params),
            ]
        )
        == 2
    )
    assert "no benchmark 'ade150'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate(eval_inputs, "gt_masks")  # diagnostics name their CLIP: gt_masks_base, gt_masks_ft_mpt, ...
    assert not paths.EVAL_METRICS.exists()


def ground_truth_proposals(inputs, path: Path, skip: int = 0) -> Path:
    """A stand-in generator: the ground-truth segments of the benchmark's images (all but the first ``skip``)
    as an `ovseg propose` file, named relative to the benchmark's image folder, scores 1, no classes."""
    dataset = load_world(inputs.manifest).benchmark("demo")
    rows = []
    for key in dataset.keys()[skip:]:
        _, masks = gt_segments(dataset.load(key).label)
        rows += proposal_rows(f"{key}.jpg", masks, torch.ones(len(masks)), torch.ones(len(masks), 1), ["object"])
    return write_table(pa.Table.from_pylist(rows, schema=PROPOSALS), path)


def test_ground_truth_proposals_give_the_ground_truth_diagnostic(eval_inputs, tmp_path, monkeypatch, capsys):
    """Crops of ground-truth segments scored 1 are painted with CLIP's top class, as `gt_masks_base` paints them:
    the same confusion, so the same figures; the outputs stay out of the DVC-owned folders."""
    monkeypatch.chdir(tmp_path)
    assert evaluate(eval_inputs, "gt_masks_base") == 0
    diagnostic = record("gt_masks_base")
    assert "proposals" not in diagnostic and "images_without_proposals" not in diagnostic
    proposals = ground_truth_proposals(eval_inputs, tmp_path / "gt_segments.parquet")
    timings = sorted(paths.TIMINGS.iterdir())
    assert evaluate(eval_inputs, "base maskpool", None, "--proposals", str(proposals)) == 0
    assert "0 image(s) without any" in capsys.readouterr().out
    out = Path("outputs/proposals-gt_segments")
    external = json.loads((out / "metrics/base/demo.json").read_text())
    for key in (*FIGURES, "pixels", "images", "classes_scored"):
        assert external[key] == diagnostic[key], key
    assert external["proposals"] == str(proposals) and external["images_without_proposals"] == 0
    assert json.loads((out / "metrics/maskpool/demo.json").read_text())["images"] == 4
    for picture in ("base/demo_per_class.png", "base/demo_overlays.png", "maskpool/demo_per_class.png"):
        assert (out / "plots" / picture).is_file()
    assert sorted(paths.EVAL_METRICS.iterdir()) == [paths.EVAL_METRICS / "gt_masks_base"]
    assert not (paths.EVAL_PLOTS / "base").exists() and sorted(paths.TIMINGS.iterdir()) == timings


def test_proposals_output_root_missing_images_and_errors(eval_inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    proposals = ground_truth_proposals(eval_inputs, tmp_path / "three.parquet", skip=1)
    assert evaluate(eval_inputs, "mpt", None, "--proposals", str(proposals), "--out", "mine") == 0
    result = json.loads(Path("mine/metrics/mpt/demo.json").read_text())
    assert result["images"] == 4 and result["images_without_proposals"] == 1
    assert not Path("outputs").exists() and not paths.EVAL_METRICS.exists()
    capsys.readouterr()
    assert evaluate(eval_inputs, "base oracle gt_masks_base", None, "--proposals", str(proposals)) == 2
    assert "the diagnostics oracle, gt_masks_base make their own" in capsys.readouterr().err
    assert evaluate(eval_inputs, "base", None, "--proposals", "nowhere.parquet") == 2
    assert "nowhere.parquet: proposals file not found" in capsys.readouterr().err
    assert not Path("outputs").exists()


def _voc_tree(root: Path) -> Path:
    """VOC2012's layout: JPEGImages, palette SegmentationClass PNGs (0 background, v = class v), val.txt."""
    voc = root / "VOCdevkit/VOC2012"
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    (voc / "JPEGImages").mkdir()
    (voc / "SegmentationClass").mkdir()
    rng = np.random.default_rng(0)
    for key in ("2007_000033", "2007_000042"):
        Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{key}.jpg")
        label = np.zeros((32, 40), np.uint8)
        label[4:20, 4:20] = 15  # person: seen
        label[16:30, 22:38] = 16  # pottedplant: unseen in voc_15_5
        label[0, :] = 255  # border
        image = Image.fromarray(label).convert("P")
        image.putpalette([c for i in range(256) for c in (i, 255 - i, (7 * i) % 256)])
        image.save(voc / "SegmentationClass" / f"{key}.png")
    (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000033\n2007_000042\n")
    return voc


@pytest.mark.slow
def test_voc_15_5_records_seen_unseen_and_hiou(tmp_path, make_params):
    data = _coco_tree(tmp_path / "datasets")
    data["real"]["split"] = "voc_15_5"
    data["real"]["benchmarks"] = {"voc20": str(_voc_tree(tmp_path / "datasets"))}
    data["benchmarks"] = ["voc20"]
    build_world(data, tmp_path / "world")
    save_clip_folder(build_clip("ovseg-tiny-vit", device="cpu", seed=0), tmp_path / paths.CLIP_BASE)
    assert (
        evaluate_main(
            [
                "--variant",
                "gt_masks_base",
                "--benchmark",
                "voc20",
                "--world",
                str(tmp_path / "world/manifest.json"),
                "--artifacts",
                str(tmp_path / paths.ARTIFACTS),
                "--params",
                str(make_params()),
            ]
        )
        == 0
    )
    result = json.loads((paths.EVAL_METRICS / "gt_masks_base/voc20.json").read_text())
    assert (result["classes"], result["classes_seen"], result["classes_unseen"]) == (20, 15, 5)
    seen, unseen, hiou = result["mIoU_seen"], result["mIoU_unseen"], result["hIoU"]
    assert seen is not None and unseen is not None and hiou is not None
    assert hiou == pytest.approx(0.0 if 0.0 in (seen, unseen) else 2 / (1 / seen + 1 / unseen), abs=0.02)
