"""The prepare job: raw benchmark downloads → prepared layouts, item rows and rejects, on any Beam runner.

Pipeline::

    items (benchmark, key, raw paths) ─ key by group ─ GroupByKey ─ PrepareItems ─┬─ items   ─ WriteParquetShards
                                        (crc32(benchmark, key)      (converts     └─ rejects ─ WriteParquetShards
                                         % groups of ~32 items)      each item)

``PrepareItems`` converts each item with its benchmark's converter (:data:`CONVERTERS`), which
writes the prepared files straight into the staging folder (one file per image and label,
each atomically, the same bytes on every runner) and returns its
:data:`pipeline.prepare.records.ITEMS` row, or raises
:class:`pipeline.prepare.records.Rejected`, which becomes a
:data:`pipeline.prepare.records.REJECTS` row. Nothing is emitted from ``finish_bundle``.

After the pipeline the driver reads both tables back and reconciles each benchmark (every
input item is prepared or rejected, exactly once), checks that the files written match the
rows, and verifies counts and value ranges (:mod:`pipeline.prepare.verify`). Only when all of
it holds do the outputs replace the previous ones, together with the metrics.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa

from core.io import atomic_dir, write_json
from pipeline.beam.groups import group_count, payloads
from pipeline.beam.reconcile import reconcile
from pipeline.beam.runner import join_branches, run_pipeline
from pipeline.beam.shards import WriteParquetShards, read_shards, shard_of
from pipeline.prepare import ade847, in_place, pascal_context, voc
from pipeline.prepare.config import COCO_STUFF, ConvertOptions, PrepareConfig
from pipeline.prepare.outputs import ITEMS_DIR, PREPARED_ROOTS, REJECTS_DIR, SUMMARY_NAME
from pipeline.prepare.records import ITEMS, REJECTS, SHARD_BY, SORT_BY, Item, Rejected, reject_row
from pipeline.prepare.verify import benchmark_metrics, of_benchmark, written_problems

LOG = logging.getLogger(__name__)

ITEMS_PER_GROUP = 32
_ITEM = "item"
_REJECT = "reject"
_EXAMPLES = 10

Converter = Callable[[Item, Path, ConvertOptions], dict[str, Any]]
#: The converter of each benchmark: item, its prepared folder (or the prepared root), options → row.
CONVERTERS: dict[str, Converter] = {
    "ade847": ade847.convert,
    "ade150": in_place.validate,
    "pc59": pascal_context.convert_pc59,
    "pc459": pascal_context.convert_pc459,
    "voc20": voc.convert,
    COCO_STUFF: in_place.validate,
}


class PreparationError(RuntimeError):
    """A benchmark failed verification; the message lists every problem and examples of the rejects."""


def prepare_one(item: Item, out_root: Path, options: ConvertOptions) -> tuple[str, dict[str, Any]]:
    """``("item", row)`` or ``("reject", row)`` for one item, its files written under ``out_root``."""
    out = out_root / PREPARED_ROOTS[item.benchmark] if item.benchmark in PREPARED_ROOTS else out_root
    try:
        return _ITEM, CONVERTERS[item.benchmark](item, out, options)
    except Rejected as rejected:
        return _REJECT, reject_row(item, rejected.reason, rejected.detail)


class PrepareItems(beam.DoFn):
    """``(group, [Item, …])`` → ``("item", row)`` and ``("reject", row)`` pairs, files written into ``out_root``."""

    def __init__(self, out_root: str, options: ConvertOptions):
        self._out_root = out_root
        self._options = options

    def process(self, element: tuple[int, Iterable[Item]]) -> Iterable[tuple[str, dict[str, Any]]]:
        _, items = element
        for item in sorted(items, key=lambda item: (item.benchmark, item.key)):
            yield prepare_one(item, Path(self._out_root), self._options)


def groups_for(num_items: int) -> int:
    """Number of item groups: about :data:`ITEMS_PER_GROUP` items each."""
    return group_count(num_items, ITEMS_PER_GROUP)


def _key_item(item: Item, num_groups: int) -> tuple[int, Item]:
    return shard_of([item.benchmark, item.key], num_groups), item


def build_prepare_pipeline(
    pipeline: beam.Pipeline,
    items: Sequence[Item],
    out_root: str | os.PathLike,
    options: ConvertOptions,
    num_shards: int,
) -> None:
    """Apply the prepare job to ``pipeline``: files and shards under ``out_root``."""
    groups = groups_for(len(items))
    out_root = Path(out_root).absolute()  # the workers may not share the driver's working directory
    outputs = (
        pipeline
        | "Items" >> beam.Create(list(items))
        | "KeyItems" >> beam.Map(_key_item, groups)
        | "GroupItems" >> beam.GroupByKey()
        | "PrepareItems" >> beam.ParDo(PrepareItems(str(out_root), options))
    )
    written_items = (
        outputs
        | "ItemRows" >> beam.FlatMap(payloads, _ITEM)
        | "WriteItems" >> WriteParquetShards(out_root / ITEMS_DIR, ITEMS, num_shards, SORT_BY, SHARD_BY)
    )
    written_rejects = (
        outputs
        | "Rejects" >> beam.FlatMap(payloads, _REJECT)
        | "WriteRejects" >> WriteParquetShards(out_root / REJECTS_DIR, REJECTS, num_shards, SORT_BY, SHARD_BY)
    )
    join_branches([written_items, written_rejects])


def _examples(rejects: pa.Table) -> list[str]:
    rows = rejects.to_pylist()[:_EXAMPLES]
    return [f"{row['benchmark']} {row['key']}: {row['reason']}: {row['detail']}" for row in rows]


def verify(
    items: Sequence[Item],
    benchmarks: Sequence[str],
    out_root: Path,
    item_rows: pa.Table,
    reject_rows: pa.Table,
    allow_partial: bool,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Reconcile every benchmark (raises :class:`pipeline.beam.reconcile.ReconciliationError`) and
    return its metrics and the problems that fail the stage."""
    metrics: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name in benchmarks:
        keys_in = [item.key for item in items if item.benchmark == name]
        done, rejected = of_benchmark(item_rows, name), of_benchmark(reject_rows, name)
        reconcile(
            f"{name} images",
            keys_in,  # type: ignore[arg-type]  # reconcile takes any hashable ids
            done.column("key").to_pylist(),
            rejected.column("key").to_pylist(),
        )
        metrics[name], found = benchmark_metrics(name, done, rejected, len(keys_in), allow_partial)
        problems += found + written_problems(out_root, name, done.column("key").to_pylist())
    return metrics, problems


def run_prepare_job(
    items: Sequence[Item],
    benchmarks: Sequence[str],
    out_dir: str | os.PathLike,
    metrics_dir: str | os.PathLike,
    config: PrepareConfig,
    sources: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Prepare ``items`` (of ``benchmarks``) into ``out_dir`` and write one metrics file per benchmark
    into ``metrics_dir``, both replaced atomically, with ``config``'s conversion options, shards, runner and
    ``allow_partial``. Returns the metrics per benchmark.

    Raises :class:`pipeline.beam.reconcile.ReconciliationError` when the outputs do not account
    for every input and :class:`PreparationError` when a benchmark fails verification; either
    way the previous outputs are left untouched. ``sources`` (benchmark → raw folder) go into
    ``prepare.json``."""
    options, num_shards, runner_cfg = config.options, config.num_shards, config.runner
    if num_shards < 1:
        raise ValueError(f"num_shards must be positive, got {num_shards}")
    unknown = sorted({item.benchmark for item in items} - set(benchmarks))
    if unknown:
        raise ValueError(f"items of benchmarks {unknown} that are not being prepared")
    benchmarks = sorted(set(benchmarks))
    with atomic_dir(out_dir) as stage, atomic_dir(metrics_dir) as metrics_stage:
        LOG.info(
            "prepare: %d items of %s on runner %s",
            len(items),
            ", ".join(benchmarks),
            dict(runner_cfg or {}).get("runner", "direct"),
        )
        run_pipeline(lambda pipeline: build_prepare_pipeline(pipeline, items, stage, options, num_shards), runner_cfg)
        item_rows = read_shards(stage / ITEMS_DIR, ITEMS)
        reject_rows = read_shards(stage / REJECTS_DIR, REJECTS)
        metrics, problems = verify(items, benchmarks, stage, item_rows, reject_rows, config.allow_partial)
        if problems:
            raise PreparationError(
                "prepare: verification failed, nothing written:\n  - "
                + "\n  - ".join(problems)
                + ("\nfirst rejects:\n  - " + "\n  - ".join(_examples(reject_rows)) if reject_rows.num_rows else "")
            )
        if "voc20" in benchmarks:
            voc.write_split(stage / PREPARED_ROOTS["voc20"], of_benchmark(item_rows, "voc20").column("key").to_pylist())
        summary = {
            name: {
                "root": PREPARED_ROOTS.get(name, (sources or {}).get(name, "")),
                "raw": (sources or {}).get(name, ""),
                "images": metrics[name]["images"],
                "prepared": metrics[name]["prepared"],
            }
            for name in benchmarks
        }
        write_json(stage / SUMMARY_NAME, {"source": "coco", "benchmarks": summary})
        for name in benchmarks:
            write_json(metrics_stage / f"{name}.json", metrics[name])
    return metrics
