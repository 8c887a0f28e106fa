"""The headline figures of ``metrics/summary.json``: the report's rows, missing figures left out."""

from __future__ import annotations

from pipeline.evaluation.summary import headline_metrics


def record(miou: float | None, seen: float | None = None, unseen: float | None = None, hiou: float | None = None):
    return {"mIoU": miou, "mIoU_seen": seen, "mIoU_unseen": unseen, "hIoU": hiou}


RECORDS = {
    ("base", "demo"): record(12.345, 15.5, 4.25, 6.67),
    ("base", "voc20"): record(40.0, 44.0, 30.0, 35.68),
    ("zsseg", "demo"): record(10.0),  # a cross-dataset protocol: no seen/unseen rule, no split
    ("oracle", "demo"): record(80.0, 81.0, 77.75, 79.34),
}


def test_rows_in_report_order_with_a_mean_only_where_every_benchmark_has_a_figure() -> None:
    summary = headline_metrics(RECORDS, {}, {})
    assert list(summary["mIoU"]) == ["base", "zsseg", "oracle"]
    assert summary["mean"] == {"base": 26.17}  # (12.345 + 40) / 2, to two decimals
    assert summary["mIoU"]["base"] == {"demo": 12.35, "voc20": 40.0}
    assert summary["mIoU"]["zsseg"] == {"demo": 10.0}


def test_split_figures_only_for_benchmarks_that_have_a_split() -> None:
    split = headline_metrics(RECORDS, {}, {})["split"]
    assert split["base"]["demo"] == {"seen": 15.5, "unseen": 4.25, "hIoU": 6.67}
    assert "zsseg" not in split


def test_val_gauge_and_mining_sections() -> None:
    mining = {"pairs": 7118, "quality": {"precision": 0.7964, "seen": {"precision": 0.8469}, "unseen": {}}}
    summary = headline_metrics(RECORDS, {"base": {"mean": 47.256}}, {("base", "val"): record(25.56)}, mining=mining)
    assert summary["val"] == {"base": 25.56} and summary["gauge"] == {"base": 47.26}
    assert summary["mining"] == {"pairs": 7118, "precision": 0.7964, "precision_seen": 0.8469}


def test_sections_without_figures_are_left_out() -> None:
    assert headline_metrics({}, {}, {}) == {}


def test_training_figures_as_the_stages_wrote_them() -> None:
    training = {"base_clip": {"final_loss": 3.2537, "epochs": 16}, "proposer": {"epochs": 6}}
    assert headline_metrics({}, {}, {}, training=training) == {"train": {"base_clip": {"final_loss": 3.2537}}}


def test_mining_without_a_quality_record_gives_its_pairs_only() -> None:
    assert headline_metrics({}, {}, {}, mining={"pairs": 12, "quality": None}) == {"mining": {"pairs": 12}}
