"""Reading the evaluation and ground-truth gauge records; table pieces."""

from __future__ import annotations

import json

import pytest

from pipeline.evaluation.report import crop_table, heading, miou_table, read_crop_metrics, read_eval_metrics, row_mean


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
    with pytest.raises(ValueError, match="base.json: not a ground-truth gauge record"):
        read_crop_metrics(tmp_path / "crops")
    (tmp_path / "crops/base.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_crop_metrics(tmp_path / "crops")


def test_unregistered_variants_come_last():
    records = {
        ("zzz", "demo"): {"mIoU": 1.0},
        ("base", "demo"): {"mIoU": 2.0, "mIoU_seen": None},
        ("base", "voc20"): {"mIoU": 4.0},
    }
    lines = miou_table(records, ["base", "zzz"], ["demo", "voc20"], "variant")
    assert lines == [
        "| variant | A-150 | PAS-20 | mean |",
        "| --- | ---: | ---: | ---: |",
        "| `base` | 2.0 | 4.0 | 3.0 |",
        "| `zzz` | 1.0 | – | – |",
    ]
    crops = crop_table({"other": {"mean": 1}, "ft": {"mean": 2.04, "chance": 2.27}})
    assert crops[2:] == ["| `ft` | 2.0 | – | – | 2.3 |", "| `other` | 1.0 | – | – | – |"]


def test_headings_are_the_papers_names():
    assert [heading(b, ["demo"]) for b in ("ade847", "pc459", "demo", "pc59", "voc20")] == [
        "A-847",
        "PC-459",
        "A-150",
        "PC-59",
        "PAS-20",
    ]
    assert heading("ade150", ["ade150"]) == "A-150" and heading("demo", ["ade150", "demo"]) == "A-150 (demo)"
    assert heading("coco", ["coco"]) == "`coco`"


def test_row_mean_needs_every_benchmark():
    records = {("base", "demo"): {"mIoU": 2.0}, ("base", "voc20"): {"mIoU": 5.0}, ("ft", "demo"): {"mIoU": 1.0}}
    assert row_mean(records, "base", ["demo", "voc20"]) == 3.5
    assert row_mean(records, "ft", ["demo", "voc20"]) is None


def test_any_registered_variant_is_picked_up_in_registry_order(monkeypatch):
    from pipeline.evaluation import report

    monkeypatch.setattr(report, "variant_names", lambda: ["new_one", "base"])
    records = {
        (name, "demo"): {"mIoU": 1.0, "mIoU_seen": 1.0, "mIoU_unseen": 1.0, "images": 1, "classes": 2}
        for name in ("base", "new_one")
    }
    text = report.render_results(records)
    assert text.index("| `new_one` | 1.0 |") < text.index("| `base` | 1.0 |")
