"""Stage `prepare`: the demo no-op (same bytes, no Beam), a real-layout run, and its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from core import paths
from core.io import read_json
from stages.prepare import SKIPPED, main
from tests.pipeline.prepare.raw_formats import write_raw_downloads

REPO = Path(__file__).resolve().parents[2]
DEMO = {
    "data": {"source": "demo", "benchmarks": ["demo"]},
    "prepare": {"raw": {}, "runner": {"runner": "direct", "workers": 2}},
}


def _params(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_demo_skips_with_the_same_bytes_every_time(tmp_path, capsys) -> None:
    params = _params(tmp_path, DEMO)
    outputs = []
    for run in ("a", "b"):
        assert main(["--params", str(params), "--out", f"{run}/prepared", "--metrics", f"{run}/metrics"]) == 0
        outputs.append(_files(tmp_path / run))
    assert outputs[0] == outputs[1]
    assert sorted(outputs[0]) == ["metrics/demo.json", "prepared/prepare.json"]
    assert read_json(tmp_path / "a/metrics/demo.json") == {"benchmark": "demo", "skipped": SKIPPED}
    assert "prepare: skipped" in capsys.readouterr().out


def test_the_demo_does_not_import_beam(tmp_path) -> None:
    params = _params(tmp_path, DEMO)
    code = (
        "import sys; from stages.prepare import main; "
        f"assert main(['--params', {str(params)!r}]) == 0; "
        "assert 'apache_beam' not in sys.modules and 'torch' not in sys.modules, 'heavy imports'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / paths.PREPARED / "prepare.json").is_file()


def test_real_downloads_are_prepared_and_reported(tmp_path, capsys) -> None:
    tree = write_raw_downloads(tmp_path / "raw", bad=True)
    params = tree.params()
    params["data"]["benchmarks"] = ["voc20", "pc59"]
    assert main(["--params", str(_params(tmp_path, params))]) == 0
    printed = capsys.readouterr().out
    assert (
        "prepare: voc20: 2/1449 images (partial: 1447 missing, accepted), label_without_image 1, "
        "size_mismatch 1;" in printed
    )
    assert "-> data/prepared/VOCdevkit/VOC2010" in printed and "prepare: coco_stuff171: 2/118287" in printed
    assert sorted(p.name for p in (tmp_path / paths.PREPARE_METRICS).iterdir()) == [
        "coco_stuff171.json",
        "pc59.json",
        "voc20.json",
    ]


def test_errors_name_what_is_wrong(tmp_path, capsys) -> None:
    tree = write_raw_downloads(tmp_path / "raw")
    params = tree.params(coco_stuff=False)
    params["data"]["benchmarks"] = ["voc20"]
    bad = {**params, "prepare": {**params["prepare"], "jpeg_qualty": 90}}
    assert main(["--params", str(_params(tmp_path, bad))]) == 2
    assert "prepare: prepare: unknown keys ['jpeg_qualty']" in capsys.readouterr().err

    missing = {**params, "data": {**params["data"], "benchmarks": ["voc20", "ade847"]}}
    (tree.raw["ade847"] / "index_ade20k.pkl").unlink()
    assert main(["--params", str(_params(tmp_path, missing))]) == 2
    assert "these downloads are missing" in capsys.readouterr().err

    strict = {**params, "prepare": {**params["prepare"], "allow_partial": False}}
    assert main(["--params", str(_params(tmp_path, strict))]) == 1
    err = capsys.readouterr().err
    assert "verification failed, nothing written" in err and "voc20: 2 images prepared, 1449 expected" in err
    assert not (tmp_path / paths.PREPARED).exists()
