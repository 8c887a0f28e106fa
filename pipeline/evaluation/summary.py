"""The headline figures: what ``dvc metrics show`` and ``dvc exp show`` compare across runs.

The evaluation JSONs hold per-class tables (some 20,000 keys in all), which no table of experiments can show;
they are plain outputs. ``metrics/summary.json`` keeps, per row of the report: the mean mIoU over the benchmarks,
the mIoU on each, seen / unseen / hIoU where the benchmark has a split, the mIoU on ``val`` and the ground-truth
gauge; and the mined pairs' count and precision. Keys are the names of ``reports/results.md``; a missing
figure is left out, never written as a placeholder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.evaluation.report import CropRecords, EvalRecords, benchmark_names, report_order, row_mean

SPLIT_KEYS = {"seen": "mIoU_seen", "unseen": "mIoU_unseen", "hIoU": "hIoU"}


def _present(figures: Mapping[str, Any]) -> dict[str, float | int]:
    """The figures that exist, floats to two decimals (as the evaluation JSONs write them), counts as they are."""
    return {
        key: value if isinstance(value, int) else round(float(value), 2)
        for key, value in figures.items()
        if value is not None
    }


def headline_metrics(
    records: EvalRecords,
    crops: CropRecords,
    val: EvalRecords,
    mining: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``{"mean", "mIoU", "split", "val", "gauge", "mining"}``: each a ``{row: figures}`` map (``mining``: the
    pairs) from the report's inputs; a section without figures is left out."""
    benchmarks = benchmark_names(records)
    rows = report_order({name for name, _ in records})
    summary: dict[str, Any] = {
        "mean": _present({name: row_mean(records, name, benchmarks) for name in rows}),
        "mIoU": {name: _present({b: records.get((name, b), {}).get("mIoU") for b in benchmarks}) for name in rows},
        "split": {
            name: split
            for name in rows
            if (
                split := {
                    b: figures
                    for b in benchmarks
                    if (figures := _present({k: records.get((name, b), {}).get(v) for k, v in SPLIT_KEYS.items()}))
                    and "hIoU" in figures
                }
            )
        },
        "val": _present({name: record.get("mIoU") for (name, _), record in sorted(val.items())}),
        "gauge": _present({name: crops[name].get("mean") for name in report_order(set(crops))}),
    }
    if mining:
        quality = mining.get("quality", {})
        figures = {
            "pairs": mining.get("pairs"),
            "precision": quality.get("precision"),
            "precision_seen": quality.get("seen", {}).get("precision"),
            "precision_unseen": quality.get("unseen", {}).get("precision"),
        }
        summary["mining"] = {key: value for key, value in figures.items() if value is not None}
    return {key: section for key, section in summary.items() if section}
