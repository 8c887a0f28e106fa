"""Reading the evaluation and crop-benchmark records; table pieces."""
from __future__ import annotations

import json

import pytest

from pipeline.evaluation.report import crop_table, miou_table, read_crop_metrics, read_eval_metrics


def test_missing_folders_read_as_empty(tmp_path):
    assert read_eval_metrics(tmp_path / "none") == {}
    assert read_crop_metrics(tmp_path / "none") == {}


def test_records_without_figures_are_refused(tmp_path):
    (tmp_path / "eval/base").mkdir(parents=True)
    (tmp_path / "eval/base/demo.json").write_text(json.dumps({"mIoU": 1.0}))
    with pytest.raises(ValueError, match=r"demo.json: not an evaluation record \(missing mIoU_seen"):
        read_eval_metrics(tmp_path / "eval")
    (tmp_path / "crops").mkdir()
    (tmp_path / "crops/base.json").write_text("[]")
    with pytest.raises(ValueError, match="base.json: not a crop-benchmark record"):
        read_crop_metrics(tmp_path / "crops")
    (tmp_path / "crops/base.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_crop_metrics(tmp_path / "crops")


def test_unregistered_variants_come_last():
    records = {("zzz", "demo"): {"mIoU": 1.0}, ("base", "demo"): {"mIoU": 2.0, "mIoU_seen": None}}
    lines = miou_table(records, ["base", "zzz"], ["demo"], "variant")
    assert lines == ["| variant | demo all | demo seen | demo unseen |", "| --- | ---: | ---: | ---: |",
                     "| `base` | 2.0 | – | – |", "| `zzz` | 1.0 | – | – |"]
    crops = crop_table({"other": {"mean": 1}, "ft": {"mean": 2.04, "chance": 2.27}})
    assert crops[2:] == ["| `ft` | 2.0 | – | – | 2.3 |", "| `other` | 1.0 | – | – | – |"]
