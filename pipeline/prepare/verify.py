"""The verdict on a prepared benchmark: its metrics, and the problems that fail the stage.

A benchmark fails when no image was prepared, when a label held values outside its class list
(``out_of_range``: the wrong download or a damaged file), when the number of prepared images
differs from the expected one (:data:`pipeline.prepare.records.EXPECTED_IMAGES`; with
``allow_partial`` fewer are accepted and the metrics say so), or when the files written do not
match the rows.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.datasets.benchmarks import LAYOUTS
from pipeline.datasets.vocab import class_names
from pipeline.prepare.config import COCO_STUFF
from pipeline.prepare.outputs import PREPARED_ROOTS
from pipeline.prepare.records import EXPECTED_IMAGES, REASON_OUT_OF_RANGE

_DIGITS = 6
_EXAMPLES = 3


def of_benchmark(table: pa.Table, name: str) -> pa.Table:
    """The rows of ``table`` (items or rejects) of benchmark ``name``."""
    return table.filter(pc.equal(table["benchmark"], name))


def class_count(name: str) -> int:
    """The number of classes of a benchmark (COCO-Stuff: 171)."""
    return len(class_names("coco_stuff171" if name == COCO_STUFF else name))


def benchmark_metrics(
    name: str, items: pa.Table, rejects: pa.Table, inputs: int, allow_partial: bool
) -> tuple[dict[str, Any], list[str]]:
    """``(metrics, problems)`` of one benchmark from its item and reject rows."""
    images, expected = items.num_rows, EXPECTED_IMAGES[name]
    reasons = Counter(rejects.column("reason").to_pylist())
    pixels = int(pc.sum(items["pixels"]).as_py() or 0)
    ignore = int(pc.sum(items["ignore_pixels"]).as_py() or 0)
    present = set(pc.list_flatten(items["classes"]).to_pylist())
    metrics: dict[str, Any] = {
        "benchmark": name,
        "images": images,
        "expected_images": expected,
        "inputs": inputs,
        "rejects": dict(sorted(reasons.items())),
        "complete": images == expected,
        "partial": False,
        "classes": class_count(name),
        "classes_present": len(present),
        "pixels": pixels,
        "ignore_share": round(ignore / pixels, _DIGITS) if pixels else None,
        "prepared": "built" if name in PREPARED_ROOTS else "validated in place",
    }
    problems = []
    if images == 0:
        problems.append(f"{name}: no image prepared from {inputs} inputs")
    if reasons[REASON_OUT_OF_RANGE]:
        bad = rejects.filter(pc.equal(rejects["reason"], REASON_OUT_OF_RANGE))
        examples = "; ".join(bad.column("detail").to_pylist()[:_EXAMPLES])
        problems.append(f"{name}: {reasons[REASON_OUT_OF_RANGE]} labels hold values out of range, e.g. {examples}")
    if images != expected:
        summary = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items())) or "no rejects"
        if images < expected and allow_partial:
            metrics["partial"] = True
            metrics["missing_images"] = expected - images
        else:
            problems.append(f"{name}: {images} images prepared, {expected} expected ({inputs} inputs; {summary})")
    return metrics, problems


def written_problems(out: Path, name: str, keys: list[str]) -> list[str]:
    """Differences between the label files of a built benchmark under ``out`` (the prepared root) and its rows."""
    if name not in PREPARED_ROOTS:
        return []
    layout = LAYOUTS[name]
    labels = out / PREPARED_ROOTS[name] / layout.labels
    found = (
        sorted(p.name[: -len(layout.label_suffix)] for p in labels.glob("*" + layout.label_suffix))
        if labels.is_dir()
        else []
    )
    problems = []
    if found != sorted(keys):
        extra, lost = sorted(set(found) - set(keys)), sorted(set(keys) - set(found))
        problems.append(
            f"{name}: label files in {labels} differ from the prepared rows "
            f"(extra {extra[:_EXAMPLES]}, missing {lost[:_EXAMPLES]})"
        )
    missing_images = [
        key for key in keys if not (out / PREPARED_ROOTS[name] / layout.images / (key + layout.image_suffix)).is_file()
    ]
    if missing_images:
        problems.append(f"{name}: {len(missing_images)} prepared images are missing, e.g. {missing_images[:_EXAMPLES]}")
    return problems
