"""The headline figures: what ``dvc metrics show`` and ``dvc exp show`` compare across runs.

The evaluation JSONs hold per-class tables (some 20,000 keys in all), which no table of experiments can show;
they are plain outputs. ``metrics/summary.json`` keeps, per row of the report: the mean mIoU over the benchmarks,
the mIoU on each, seen / unseen / hIoU where the benchmark has a split, the mIoU on ``val`` and the ground-truth
gauge; the mined pairs' count and precision; and each training stage's final loss (with the Mask-Adapter's
gauge on ``val`` and the text prompts' accuracy). It is the pipeline's one declared metrics file, so that the
columns of ``dvc exp show`` are these keys. Keys are the names of ``reports/results.md``; a missing figure is
left out, never written as a placeholder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.evaluation.report import CropRecords, EvalRecords, benchmark_names, report_order, row_mean

SPLIT_KEYS = {"seen": "mIoU_seen", "unseen": "mIoU_unseen", "hIoU": "hIoU"}
#: The training stages, in DAG order, whose metrics files (``metrics/<name>.json``) give the ``train`` rows.
TRAINING_STAGES = (
    "base_clip",
    "proposer",
    "finetune",
    "base_clip_longer",
    "finetune_gt",
    "prompt_tune_base",
    "prompt_tune_ft",
    "text_prompts_base",
    "text_prompts_ft",
    "mask_adapter_base",
    "mask_adapter_ft",
)
#: The figures kept from a training stage's metrics file, where it has them.
TRAINING_KEYS = ("final_loss", "final_accuracy", "val_gauge")


def _present(figures: Mapping[str, Any]) -> dict[str, float | int]:
    """The figures that exist, floats to two decimals (as the evaluation JSONs write them), counts as they are."""
    return {
        key: value if isinstance(value, int) else round(float(value), 2)
        for key, value in figures.items()
        if value is not None
    }


def _split(records: EvalRecords, name: str, benchmarks: list[str]) -> dict[str, dict[str, float | int]]:
    """Row ``name``'s seen / unseen / hIoU on each benchmark that has a split (an hIoU)."""
    split = {}
    for benchmark in benchmarks:
        record = records.get((name, benchmark), {})
        figures = _present({key: record.get(source) for key, source in SPLIT_KEYS.items()})
        if "hIoU" in figures:
            split[benchmark] = figures
    return split


def _mining(mining: Mapping[str, Any]) -> dict[str, Any]:
    """The pairs' count and precision, as the mining stage wrote them."""
    quality = mining.get("quality") or {}  # None without ground truth to measure it against (real COCO)
    figures = {
        "pairs": mining.get("pairs"),
        "precision": quality.get("precision"),
        "precision_seen": (quality.get("seen") or {}).get("precision"),
        "precision_unseen": (quality.get("unseen") or {}).get("precision"),
    }
    return {key: value for key, value in figures.items() if value is not None}


def headline_metrics(
    records: EvalRecords,
    crops: CropRecords,
    val: EvalRecords,
    mining: Mapping[str, Any] | None = None,
    training: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``{"mean", "mIoU", "split", "val", "gauge", "mining", "train"}``: each a ``{row: figures}`` map
    (``mining``: the pairs; ``train``: ``{stage: figures}`` from the stages' metrics files) from the report's
    inputs; a section without figures is left out."""
    benchmarks = benchmark_names(records)
    rows = report_order({name for name, _ in records})
    train = {  # as the stages wrote them: losses have more than two decimals that matter
        stage: figures
        for stage, record in sorted((training or {}).items())
        if (figures := {key: record[key] for key in TRAINING_KEYS if record.get(key) is not None})
    }
    summary = {
        "mean": _present({name: row_mean(records, name, benchmarks) for name in rows}),
        "mIoU": {name: _present({b: records.get((name, b), {}).get("mIoU") for b in benchmarks}) for name in rows},
        "split": {name: split for name in rows if (split := _split(records, name, benchmarks))},
        "val": _present({name: record.get("mIoU") for (name, _), record in sorted(val.items())}),
        "gauge": _present({name: crops[name].get("mean") for name in report_order(set(crops))}),
        "mining": _mining(mining or {}),
        "train": train,
    }
    return {key: section for key, section in summary.items() if section}
