"""Where the prepare stage writes, and what it writes when there is nothing to prepare.

::

    data/prepared/
      prepare.json                          what was prepared: per benchmark its root, images and how
      ADE20K_2021_17_01/                    ade847 (built)
      VOCdevkit/VOC2010/                    pc59, pc459 (built)
      VOCdevkit/VOC2012/                    voc20 (built)
      items/part-*.parquet                  one row per prepared pair (pipeline.prepare.records.ITEMS)
      rejects/part-*.parquet                one row per rejected input (pipeline.prepare.records.REJECTS)
    metrics/prepare/<benchmark>.json        counts against the expected ones, classes present, ignore share

ADE20K-150 and COCO-Stuff are validated where they lie (``prepare.json`` names their folders).
"""

from __future__ import annotations

from pathlib import Path

from core.io import atomic_dir, write_json

SUMMARY_NAME = "prepare.json"
ITEMS_DIR = "items"
REJECTS_DIR = "rejects"
#: The folder of each built benchmark under the prepared root; the others are validated in place.
PREPARED_ROOTS = {
    "ade847": "ADE20K_2021_17_01",
    "pc59": "VOCdevkit/VOC2010",
    "pc459": "VOCdevkit/VOC2010",
    "voc20": "VOCdevkit/VOC2012",
}


def write_skipped(out: Path, metrics_dir: Path, benchmarks: list[str], reason: str) -> None:
    """The outputs of a run with nothing to prepare: the same bytes for the same ``benchmarks`` and ``reason``."""
    with atomic_dir(out) as out_stage, atomic_dir(metrics_dir) as metrics_stage:
        write_json(out_stage / SUMMARY_NAME, {"skipped": reason, "benchmarks": {}})
        for name in sorted(set(benchmarks)):
            write_json(metrics_stage / f"{name}.json", {"benchmark": name, "skipped": reason})
