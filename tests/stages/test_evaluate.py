"""Stage `evaluate` (and `report` on its real outputs) on a tiny world with tiny random models."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from stages.evaluate import main as evaluate_main
from stages.report import main as report_main

FIGURES = {"mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "fwIoU", "mACC", "pACC", "per_class"}


def evaluate(inputs, variant: str, params: Path | None = None) -> int:
    return evaluate_main([
        "--variant", *variant.split(), "--benchmark", "demo",
        "--world", str(inputs.manifest), "--artifacts", str(inputs.artifacts),
        "--params", str(params or inputs.params),
    ])


def record(variant: str) -> dict:
    return json.loads(Path(f"metrics/eval/{variant}/demo.json").read_text())


def test_evaluate_writes_metrics_pictures_and_timing(eval_inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert evaluate(eval_inputs, "base") == 0
    printed = capsys.readouterr().out
    assert "evaluate base/demo: mIoU" in printed and "images/s" in printed
    result = record("base")
    assert FIGURES <= set(result)
    assert result["images"] == 4 and result["classes"] == 44 and len(result["per_class"]) == 44
    assert result["classes_seen"] + result["classes_unseen"] == 44 and result["classes_unseen"] > 0
    assert result["variant"] == "base" and result["mode"] == "two_stage" and result["settings"]["lam"] == 0.7
    assert 0.0 <= result["mIoU"] <= 100.0
    scored = [v for v in result["per_class"].values() if v is not None]
    assert result["mIoU"] == pytest.approx(sum(scored) / len(scored), abs=0.01)
    assert "seconds" not in json.dumps(result)  # timings stay out of the DVC-tracked metrics
    for picture in ("demo_per_class.png", "demo_overlays.png"):
        with Image.open(Path("plots/eval/base") / picture) as image:
            assert image.format == "PNG" and image.width > 300
    timing = json.loads(Path("metrics/timings/evaluate_base_demo.json").read_text())
    assert timing["images"] == 4 and timing["images_per_s"] > 0


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
    report = Path("reports/results.md").read_text()
    for row in ("| `base` |", "| `mpt` |", "| `oracle` |", "| `gt_masks_base` |"):
        assert row in report
    assert report.index("| `mpt` |") < report.index("## Diagnostics") < report.index("| `oracle` |")
    assert Path("reports/miou.csv").read_text().splitlines()[0] == "run,variant,benchmark,mIoU,mIoU_seen,mIoU_unseen"


def test_evaluation_is_deterministic(eval_inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert evaluate(eval_inputs, "mpt") == 0
    first = Path("metrics/eval/mpt/demo.json").read_bytes()
    assert evaluate(eval_inputs, "mpt") == 0
    assert Path("metrics/eval/mpt/demo.json").read_bytes() == first


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
    assert evaluate_main(["--variant", "base", "--benchmark", "ade150", "--world", str(eval_inputs.manifest),
                          "--artifacts", str(eval_inputs.artifacts), "--params", str(eval_inputs.params)]) == 2
    assert "no benchmark 'ade150'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate(eval_inputs, "gt_masks")  # diagnostics name their CLIP: gt_masks_base, gt_masks_ft_mpt, ...
    assert not Path("metrics/eval").exists()
